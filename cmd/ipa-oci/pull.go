package main

import (
	"fmt"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

func newPullCmd(g *globalOptions) *cobra.Command {
	var (
		po       bootdir.PullOptions
		pin      string
		interval time.Duration
		reg      registryFlags
	)
	cmd := &cobra.Command{
		Use:   "pull REF --dest DIR",
		Short: "Pull a kernel and initramfs onto a PXE/HTTP boot directory, verified and atomically",
		Long: `Pull places ironic-python-agent.kernel and ironic-python-agent.initramfs (metal3 names
ironic-python-agent_aarch64.* for arm64), SHA256SUMS and ipa-oci.json in DIR. Every blob is
verified before it becomes visible, files already in DIR are reused only after hashing them;
kernel and initramfs switch together; the previous version is kept for 'ipa-oci rollback'. Everything
served is world-readable whatever the umask. When nothing changed it costs one manifest request and
a few stat calls and writes nothing; a served file modified since it was checked is hashed again
and, if it no longer matches, downloaded again (--verify-local hashes every file).`,
		Args: refArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if po.Dest == "" {
				return fmt.Errorf("pull: --dest DIR is required")
			}
			if pin != "" {
				d, err := digest.Parse(pin)
				if err != nil {
					return fmt.Errorf("pull: --pin %q: want sha256:<64 hex digits>", pin)
				}
				po.Pin = d
			}
			ctx := cmd.Context()
			for {
				res, err := pull(cmd, g, &reg, args[0], po)
				if err != nil && interval == 0 {
					return err
				}
				if err != nil {
					g.log.WithError(withFlagHint(err)).Error("pull failed; will retry at the next interval")
				} else {
					state := "up to date"
					if res.Updated {
						state = "updated"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", state, res.Record.Arch, res.Record.IndexDigest)
				}
				if interval == 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&po.Dest, "dest", "", "directory served over TFTP/HTTP")
	f.StringVar(&po.Arch, "arch", artifact.DefaultArch, "architecture to pull: amd64 or arm64")
	f.StringVar(&pin, "pin", "", "refuse any index digest but this one (sha256:...)")
	f.BoolVar(&po.IPXE, "ipxe", false, "also write boot.ipxe (boot_aarch64.ipxe for arm64)")
	f.StringArrayVar(&po.KernelArgs, "kernel-arg", nil, "kernel argument for boot.ipxe, e.g. ipa-api-url=http://ironic:6385 (repeatable)")
	f.StringVar(&po.Exec, "exec", "", "shell command to run after a real update")
	f.BoolVar(&po.VerifyLocal, "verify-local", false, "hash every file in DIR (and check its record against the registry) even when stat says nothing changed")
	f.DurationVar(&interval, "interval", 0, "keep running and re-check every D (e.g. 5m)")
	reg.add(cmd)
	return cmd
}

// pull opens ref and pulls it once into po.Dest.
func pull(cmd *cobra.Command, g *globalOptions, reg *registryFlags, ref string, po bootdir.PullOptions) (*bootdir.PullResult, error) {
	src, r, err := reg.open(g, cmd, ref)
	if err != nil {
		return nil, err
	}
	return bootdir.Pull(cmd.Context(), src, r, po, bootdir.WithLogger(g.log), bootdir.WithProgress(g.progressOut(cmd.ErrOrStderr())))
}
