package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, VCS revision and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// What cobra prints for --version (its default, which needs no text/template: a
			// custom version template would link text/template and, with it, keep every
			// exported method in the binary: 5 MB more).
			fmt.Fprintf(cmd.OutOrStdout(), "%s version %s\n", cmd.Root().DisplayName(), cmd.Root().Version)
			return nil
		},
	}
}

// buildVersion describes this binary from the build information Go embeds in it: the module
// version, the VCS revision ("+dirty" when built from a modified tree; "unknown" when built
// without VCS information, e.g. -buildvcs=false) and the Go version, on three lines.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	rev, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "+dirty"
	}
	return fmt.Sprintf("%s\nrevision: %s\ngo: %s", bi.Main.Version, rev, bi.GoVersion)
}
