package main

import (
	"fmt"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newCleanCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove the build's output tree (Buildroot's O=); the download and ccache directories stay",
		Long: `Clean removes OUTPUT/buildroot (Buildroot's O=, with its .config: configuration changes not
saved with 'ipa-oci make savedefconfig' go too) and ipa-oci's scratch directories in OUTPUT.
The artifacts of the last build (kernel, initramfs, build-info.json, build.log) stay, and so do
the download and ccache directories, so the next build starts from scratch without downloading
again. It refuses while a builder container of this output directory runs.
'ipa-oci build --clean' does the same before building.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(cmd, g, true)
			if err != nil {
				return err
			}
			removed, err := builder.Clean(cmd.Context(), o)
			for _, d := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), "removed", d)
			}
			return err
		},
	}
	f.add(cmd.Flags(), cleanKind)
	return cmd
}
