package main

import (
	"github.com/ipa-oci/ipa-oci/images"
	"github.com/spf13/cobra"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	plainHTTP bool
}

func (r *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.plainHTTP, "plain-http", false, "talk to the registry over HTTP instead of HTTPS")
}

// options turns the flags into images options, with logging and (on a terminal) progress bars.
func (r *registryFlags) options(g *globalOptions, cmd *cobra.Command) []images.Option {
	return []images.Option{
		images.WithPlainHTTP(r.plainHTTP),
		images.WithLogger(g.log),
		images.WithProgress(progressOut(cmd.ErrOrStderr())),
	}
}
