package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(placeholder): replaced by the real command.
func newBuildCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "build", RunE: func(*cobra.Command, []string) error { return errors.New("build: not implemented") }}
}
