package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

func newPushCmd(g *globalOptions) *cobra.Command {
	var (
		req           artifact.PushRequest
		buildInfoPath string
		created       string
		reg           registryFlags
		ironic        bool
	)
	cmd := &cobra.Command{
		Use:   "push REF --kernel FILE --initramfs FILE",
		Short: "Push a kernel and initramfs to a registry or OCI layout as an ipa-oci index",
		Long: `Push uploads the kernel and initramfs as two single-layer OCI artifact manifests, merges them
into the OCI image index at REF (replacing the same architecture), tags the per-architecture index
VERSION-ARCH and any --tag, attaches --build-info as a referrer, and prints the index digest.
For a registry it then prints the Ironic settings of the pushed architecture (deploy_kernel /
deploy_ramdisk by manifest digest, a baremetal CLI line, an ironic.conf snippet): on stderr, or
as one log entry with --log-format json, or after the digest on stdout with --ironic.

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
			return printPushIronic(cmd, g, dst, ref, desc.Digest, req.Arch, ironic, reg.plainHTTP)
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
	f.BoolVar(&ironic, "ironic", false, "print the Ironic settings on stdout after the index digest (default: on stderr)")
	reg.add(cmd)
	return cmd
}

// printPushIronic prints the Ironic settings of the architecture just pushed to a registry,
// read back by index digest (a failed read-back is a warning: the push succeeded): on stdout with --ironic, else on stderr (text) or as one log
// entry (--log-format json, so that stderr stays JSON).
func printPushIronic(cmd *cobra.Command, g *globalOptions, src artifact.InspectSource, ref content.Reference, index digest.Digest, arch string, toStdout, plainHTTP bool) error {
	if ref.Repository == "" {
		return nil // an OCI layout has no oci:// URL for Ironic
	}
	byDigest := content.Reference{Name: ref.Repository + "@" + index.String(), Digest: index, Repository: ref.Repository}
	in, err := artifact.Inspect(cmd.Context(), src, byDigest)
	if err != nil {
		// The push itself succeeded: say why the settings are missing, keep exit 0.
		g.log.WithError(err).Warnf("pushed, but could not read back the Ironic settings; run ipa-oci inspect %s", byDigest)
		return nil
	}
	var settings []artifact.PlatformFiles
	for _, p := range in.Platforms {
		if p.Arch == arch {
			settings = append(settings, p)
		}
	}
	if !toStdout && g.logFormat == "json" {
		for _, p := range settings {
			if s, ok := p.IronicSettings(); ok {
				g.log.WithFields(logrus.Fields{"arch": s.Arch, "deploy_kernel": s.DeployKernel, "deploy_ramdisk": s.DeployRamdisk,
					"baremetal": s.BaremetalCommand("NODE"), "ironic_conf": s.ConfSnippet(), "plain_http": plainHTTP}).Info("Ironic settings")
			}
		}
		return nil
	}
	w := cmd.ErrOrStderr()
	if toStdout {
		w = cmd.OutOrStdout()
	}
	for _, p := range settings {
		if s, ok := p.IronicSettings(); ok {
			s.WriteText(w, "")
		}
	}
	printPlainHTTPWarning(w, settings, plainHTTP)
	return nil
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
