package main

import (
	"errors"
	"os"
	"strings"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newMakeCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	var silent bool
	cmd := &cobra.Command{
		Use:   "make TARGET... [VAR=VALUE...]",
		Short: "Run Buildroot's make (menuconfig, savedefconfig, linux-menuconfig, <pkg>-rebuild, ...) in the builder container",
		Long: `Make runs Buildroot's make with the given targets in the builder container, with exactly the
image, user, mounts, environment allow-list, hardening, O= and make variables of 'ipa-oci build'
(the lock's commits and wheel list, --make-arg, --env), from the same ipa-oci.yaml and lock.
On a terminal the container gets a TTY (menuconfig, linux-menuconfig, busybox-menuconfig work).

Targets named source or ending in -source download: they run as the fetch phase does (network
on, the download cache writable, a scratch O= configured from the defconfig). Every other
target runs as the build phase does: no network, the download cache read-only, O= is
OUTPUT/buildroot (configured from the defconfig first when it has no .config yet).

Targets that save a configuration write it back where it lives on the host: savedefconfig to the
external tree's defconfig; linux-update-defconfig, linux-update-config and linux-savedefconfig
to the kernel config the defconfig names (kernel-config/<arch>.config); busybox-update-config
to the BusyBox config the defconfig names (the external tree carries none by default). The
trees stay read-only in the container: make saves into a scratch directory, and ipa-oci copies
the file back when make succeeds, keeping the file's leading comment lines.

'ipa-oci build' starts from the defconfig every time: save configuration changes first.
The exit status is make's. See docs/customise.md.`,
		Example: `  ipa-oci make menuconfig                 # then: ipa-oci make savedefconfig
  ipa-oci make linux-menuconfig           # then: ipa-oci make linux-update-defconfig
  ipa-oci make linux-source               # download (network on)
  ipa-oci make jq-rebuild V=1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var targets, vars []string
			for _, a := range args {
				if strings.Contains(a, "=") {
					vars = append(vars, a)
				} else {
					targets = append(targets, a)
				}
			}
			if err := builder.CheckMakeTargets(targets); err != nil {
				return err
			}
			o, err := f.lockedOptions(cmd, g)
			if err != nil {
				return err
			}
			o.Progress = nil
			_, err = builder.Make(cmd.Context(), o, builder.MakeOptions{
				Targets: targets, Vars: vars, Silent: silent, Stdio: stdio(cmd),
			})
			return attachedError(cmd, err)
		},
	}
	f.add(cmd.Flags(), makeKind)
	cmd.Flags().BoolVarP(&silent, "silent", "s", false, "make -s (printvars, show-info)")
	return cmd
}

// stdio attaches the command's standard streams; stdin on a terminal gives the container a TTY.
func stdio(cmd *cobra.Command) builder.Stdio {
	s := builder.Stdio{Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if f, ok := s.Stdin.(*os.File); ok && builder.IsTerminal(f) {
		s.Terminal = f
	}
	return s
}

// attachedError gives make's or the shell's exit code to ipa-oci's exit status.
func attachedError(cmd *cobra.Command, err error) error {
	var ee *builder.ExitError
	if errors.As(err, &ee) {
		code := int(ee.Code)
		if code <= 0 || code > 255 {
			code = 1
		}
		return &exitError{code: code, err: err}
	}
	if err != nil {
		return buildError(cmd, err)
	}
	return nil
}
