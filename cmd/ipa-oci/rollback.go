package main

import (
	"fmt"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/spf13/cobra"
)

func newRollbackCmd(g *globalOptions) *cobra.Command {
	var dest, arch string
	cmd := &cobra.Command{
		Use:   "rollback --dest DIR",
		Short: "Switch DIR back to the previously pulled kernel and initramfs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dest == "" {
				return fmt.Errorf("rollback: --dest DIR is required")
			}
			rec, err := bootdir.Rollback(cmd.Context(), dest, arch)
			if err != nil {
				return err
			}
			g.log.WithFields(map[string]any{"dest": dest, "arch": rec.Arch, "index": rec.IndexDigest}).Info("rolled back")
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back %s %s\n", rec.Arch, rec.IndexDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&dest, "dest", "", "pull destination directory")
	cmd.Flags().StringVar(&arch, "arch", artifact.DefaultArch, "architecture: amd64 or arm64")
	return cmd
}
