package main

import (
	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newShellCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	var command string
	cmd := &cobra.Command{
		Use:   "shell [--command COMMAND]",
		Short: "Open a shell in the builder container, as the build phase runs it (like kas shell)",
		Long: `Shell opens bash in the build phase's container: the same image, user, mounts, environment,
hardening and O= (OUTPUT/buildroot, the working directory) as 'ipa-oci build', no network, the
download cache read-only, the Buildroot and external trees read-only. The shell function
ipa-oci-make runs Buildroot's make with exactly the arguments a build passes. On a terminal the
shell is interactive; otherwise it reads commands from stdin, or runs --command COMMAND. The exit status
is the shell's. See docs/customise.md.`,
		Example: `  ipa-oci shell
  ipa-oci shell --command 'ipa-oci-make -s printvars VARS=BR2_DEFCONFIG'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.lockedOptions(cmd, g)
			if err != nil {
				return err
			}
			o.Progress = nil
			return attachedError(cmd, builder.Shell(cmd.Context(), o, builder.ShellOptions{Command: command, Stdio: stdio(cmd)}))
		},
	}
	f.add(cmd.Flags(), makeKind)
	cmd.Flags().StringVar(&command, "command", "", "run COMMAND with bash -c instead of an interactive shell")
	return cmd
}
