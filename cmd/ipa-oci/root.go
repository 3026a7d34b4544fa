package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	logLevel  string
	logFormat string
	log       *logrus.Logger
}

// exitError carries a specific process exit code (e.g. verify's 1 for a mismatch).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{log: logrus.New()}
	root := &cobra.Command{
		Use:           "ipa-oci",
		Short:         "Build, publish and pull Ironic Python Agent ramdisks as OCI artifacts",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setupLogging(cmd.ErrOrStderr())
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newPushCmd(g), newPullCmd(g), newRollbackCmd(g), newInspectCmd(g), newVerifyCmd(g),
		newBuildCmd(g), newBuilderCmd(g), newRebuildCmd(g), newLockCmd(g), newVersionCmd(),
		newMakeCmd(g), newShellCmd(g), newConfigCmd(g), newCleanCmd(g),
	)
	return root
}

func (g *globalOptions) setupLogging(w io.Writer) error {
	lvl, err := logrus.ParseLevel(g.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	g.log.SetLevel(lvl)
	g.log.SetOutput(w)
	switch g.logFormat {
	case "text":
		g.log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		g.log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return fmt.Errorf("--log-format %q: use text or json", g.logFormat)
	}
	return nil
}

// progressOut returns w for progress bars and status lines when it is a terminal and logs are
// text; nil (no progress) otherwise: a pipe, a file, or JSON logs that a machine reads.
func (g *globalOptions) progressOut(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && g.logFormat != "json" && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// oneArg requires exactly one positional argument and names it in the error.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s: expects one argument, %s (got %d); see 'ipa-oci %s --help'", cmd.Name(), what, len(args), cmd.Name())
		}
		return nil
	}
}

// refArg is oneArg for an artifact reference.
func refArg() cobra.PositionalArgs {
	return oneArg("the reference HOST[:PORT]/REPO:TAG, HOST/REPO@sha256:... or oci:DIR:TAG")
}
