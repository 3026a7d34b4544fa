package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(placeholder): replaced by the real command.
func newRebuildCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "rebuild", RunE: func(*cobra.Command, []string) error { return errors.New("rebuild: not implemented") }}
}
