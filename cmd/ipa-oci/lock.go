package main

import (
	"fmt"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newLockCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	var update bool
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Resolve every floating input of the build and write ipa-oci.lock",
		Long: `Lock resolves what ipa-oci.yaml leaves floating and writes it to ipa-oci.lock next to the
config: the Buildroot release (tarball sha256 verified against the download), the IPA and
requirements refs resolved to commits, the builder image ID, SOURCE_DATE_EPOCH, and the agent's
pure-Python wheel closure (name, version, URL, sha256) for amd64 and arm64, resolved against the
requirements' upper-constraints.txt inside the builder container (network on, like the fetch
phase; --host-network on engines without a bridge) from pythonIndex (default
` + builder.DefaultPythonIndex + `). Commit the lock: 'ipa-oci build' builds exactly it.
An existing lock that still matches the config is kept; --update resolves everything anew
(branches move forward, new wheels are picked up). See docs/build.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(cmd, g, false)
			if err != nil {
				return err
			}
			policy := builder.LockRefresh
			if update {
				policy = builder.LockUpdate
			}
			l, action, err := builder.EnsureLock(cmd.Context(), o, f.lockFile, policy)
			if err != nil {
				return buildError(cmd, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s %s\n", f.lockFile, map[builder.LockAction]string{
				builder.LockUsed: "is up to date", builder.LockCreated: "created", builder.LockReplaced: "written",
			}[action])
			if l.Python != nil {
				for _, a := range builder.Arches {
					fmt.Fprintf(w, "%s: %d wheels\n", a, len(l.WheelsFor(a)))
				}
			}
			return nil
		},
	}
	f.add(cmd.Flags(), lockKind)
	cmd.Flags().BoolVar(&update, "update", false, "resolve every input anew even when the lock matches the config")
	return cmd
}
