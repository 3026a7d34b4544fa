package main

import (
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/spf13/cobra"
)

// registryFlags are the flags of every command that reads or writes a registry or OCI layout.
type registryFlags struct {
	plainHTTP bool
}

func (r *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.plainHTTP, "plain-http", false, "talk to the registry over HTTP instead of HTTPS")
}

// open parses ref into the target it names, with logging and (on a terminal) upload progress.
func (r *registryFlags) open(g *globalOptions, cmd *cobra.Command, ref string) (content.Target, content.Reference, error) {
	return store.Parse(ref,
		store.WithPlainHTTP(r.plainHTTP),
		store.WithLogger(g.log),
		store.WithProgress(g.progressOut(cmd.ErrOrStderr())),
	)
}
