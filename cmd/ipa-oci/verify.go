package main

import (
	"fmt"

	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/spf13/cobra"
)

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var (
		against string
		reg     registryFlags
	)
	cmd := &cobra.Command{
		Use:   "verify DIR [--against REF]",
		Short: "Recompute the digests of pulled files; with --against, compare with the registry",
		Long: `Verify recomputes every file's sha256 against DIR/ipa-oci.json and SHA256SUMS and, with
--against, against what REF holds now. It exits 1 and names each mismatch; 2 if it cannot run.`,
		Args: oneArg("the pull destination DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var src bootdir.Source
			var ref content.Reference
			if against != "" {
				t, r, err := reg.open(g, cmd, against)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				src, ref = t, r
			}
			bad, err := bootdir.Verify(cmd.Context(), args[0], src, ref)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			for _, m := range bad {
				fmt.Fprintf(cmd.OutOrStdout(), "MISMATCH %s\n", m)
			}
			if len(bad) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("verify %s: %d mismatch(es)", args[0], len(bad))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&against, "against", "", "also compare with this registry reference")
	reg.add(cmd)
	return cmd
}
