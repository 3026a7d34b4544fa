package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/spf13/cobra"
)

func newPushCmd(g *globalOptions) *cobra.Command {
	var (
		req           artifact.PushRequest
		buildInfoPath string
		created       string
		reg           registryFlags
	)
	cmd := &cobra.Command{
		Use:   "push REF --kernel FILE --initramfs FILE",
		Short: "Push a kernel and initramfs to a registry or OCI layout as an ipa-oci index",
		Long: `Push uploads the kernel and initramfs as two single-layer OCI artifact manifests, merges them
into the OCI image index at REF (replacing the same architecture), tags the per-architecture index
VERSION-ARCH and any --tag, attaches --build-info as a referrer, and prints the index digest.

REF is HOST[:PORT]/REPO:TAG or oci:DIR:TAG (an OCI image layout directory).`,
		Args: refArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Kernel == "" || req.Initramfs == "" {
				return fmt.Errorf("push: --kernel and --initramfs are required")
			}
			if buildInfoPath != "" {
				b, err := os.ReadFile(buildInfoPath)
				if err != nil {
					return fmt.Errorf("push: --build-info: %w", err)
				}
				req.BuildInfo = b
			}
			t, err := createdTime(created)
			if err != nil {
				return err
			}
			req.Created = t
			dst, ref, err := reg.open(g, cmd, args[0])
			if err != nil {
				return err
			}
			desc, err := artifact.Push(cmd.Context(), dst, ref, req, artifact.WithLogger(g.log))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Kernel, "kernel", "", "kernel image (bzImage or arm64 Image)")
	f.StringVar(&req.Initramfs, "initramfs", "", "initramfs (cpio, optionally gzip/xz/zstd compressed)")
	f.StringVar(&req.Arch, "arch", artifact.DefaultArch, "architecture of the files: amd64 or arm64")
	f.StringVar(&req.IPAVersion, "ipa-version", "", "IPA version (org.opencontainers.image.version; names the VERSION-ARCH tag)")
	f.StringVar(&req.Revision, "revision", "", "IPA source revision (org.opencontainers.image.revision)")
	f.StringVar(&req.Source, "source", "", "IPA source URL (org.opencontainers.image.source)")
	f.StringVar(&buildInfoPath, "build-info", "", "build-info JSON to attach as a referrer")
	f.StringSliceVar(&req.Tags, "tag", nil, "extra tag for the index (repeatable)")
	f.StringVar(&created, "created", "", "creation time, Unix seconds (default: $SOURCE_DATE_EPOCH; unset: no created annotation)")
	reg.add(cmd)
	return cmd
}

// createdTime parses --created, falling back to SOURCE_DATE_EPOCH, so that re-pushing the same
// files gives the same digests.
func createdTime(flag string) (time.Time, error) {
	v := flag
	if v == "" {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return time.Time{}, nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("created time %q: want Unix seconds (SOURCE_DATE_EPOCH)", v)
	}
	return time.Unix(secs, 0).UTC(), nil
}
