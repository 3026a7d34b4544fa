package builder

import (
	"context"
	"strings"
)

// ShellOptions say what `ipa-oci shell` runs.
type ShellOptions struct {
	// Command is run with bash -c; empty: an interactive shell (reading commands from stdin
	// when it is not a terminal).
	Command string
	Stdio   Stdio
}

// ShellMakeFunction is the shell function `ipa-oci shell` defines: Buildroot's make with
// exactly the arguments a build passes (O=, BR2_EXTERNAL, the lock's commits and wheel list,
// --make-arg).
const ShellMakeFunction = "ipa-oci-make"

// Shell opens a shell in the build phase's container (kas shell): the same image, user,
// mounts (O= is OUTPUT/buildroot; the download cache read-only), environment, hardening and
// no network, working in O=. The shell function ipa-oci-make runs Buildroot's make as a
// build does. It returns an *ExitError when the shell exits non-zero.
func Shell(ctx context.Context, o Options, s ShellOptions) error {
	b, err := newBuild(ctx, o, false)
	if err != nil {
		return err
	}
	if b.closeDocker {
		defer b.cli.Close()
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	rc := ShellMakeFunction + "() { " + b.makeCmd() + ` "$@"; }` + "\n" +
		`PS1='[ipa-oci shell] \w\$ '` + "\n"
	var run string
	switch {
	case s.Command != "":
		run = `BASH_ENV=/tmp/ipa-oci-shellrc exec bash -c "$1" ipa-oci-shell`
	case s.Stdio.Terminal != nil:
		banner := "ipa-oci shell: the build phase's container (no network, download cache read-only).\n" +
			"Buildroot " + ContainerBuildroot + " (read-only), O=" + ContainerOutput + ", BR2_EXTERNAL=" + ContainerExternal + " (read-only).\n" +
			"Run Buildroot's make as ipa-oci build does: " + ShellMakeFunction + " TARGET... (configuration changes: ipa-oci make savedefconfig on the host)."
		rc += "echo " + shellQuote(banner) + " >&2\n"
		run = "exec bash --noprofile --rcfile /tmp/ipa-oci-shellrc -i"
	default:
		run = "BASH_ENV=/tmp/ipa-oci-shellrc exec bash -s"
	}
	script := strings.Join([]string{
		"cat > /tmp/ipa-oci-shellrc <<'IPA_OCI_RC'",
		rc + "IPA_OCI_RC",
		run,
	}, "\n")
	cmd := []string{"/bin/bash", "-c", script, "ipa-oci-shell"}
	if s.Command != "" {
		cmd = append(cmd, s.Command)
	}
	code, err := b.attached(ctx, "shell", "build", networkNone, b.buildMounts(), ContainerOutput, cmd, s.Stdio, nil)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{What: "shell", Code: code}
	}
	return nil
}
