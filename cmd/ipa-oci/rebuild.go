package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/spf13/cobra"
)

func newRebuildCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "rebuild REF",
		Short: "Rebuild a published ramdisk from its build-info and report whether the digests match",
		Long: `Rebuild reads the build-info attached to REF for --arch (default amd64) and rebuilds with exactly the recorded
inputs (the lock the build used: Buildroot release, IPA and requirements commits, the wheels,
SOURCE_DATE_EPOCH, builder image ID; the local ipa-oci.lock plays no part), and
prints MATCH or DIFFER for each file against both the build-info and the files published at REF.
The external tree (and kernel config directory) must be checked out at the recorded content; the
builder image with the recorded ID must exist locally (or pass --builder-image to try another).
Exit status: 0 when every file matches, 1 otherwise.`,
		Args: refArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rebuildFlagError(cmd.Flags()); err != nil {
				return err
			}
			ref := args[0]
			ctx := cmd.Context()
			a, err := arches.Normalize(f.cfg.Arch)
			if err != nil {
				return err
			}
			t, r, err := f.reg.open(g, cmd, ref)
			if err != nil {
				return err
			}
			raw, err := artifact.FetchBuildInfo(ctx, t, r, a)
			if err != nil {
				return err
			}
			bi, err := builder.ReadBuildInfo(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			if !cmd.Flags().Changed("output") {
				dir, err := os.MkdirTemp("", "ipa-oci-rebuild-")
				if err != nil {
					return err
				}
				f.cfg.Output = dir
				cmd.Flags().Set("output", dir)
			}
			local, err := f.options(cmd, g, true)
			if err != nil {
				return err
			}
			o, err := builder.RebuildOptions(bi, local)
			if err != nil {
				return err
			}
			res, err := builder.Build(ctx, o)
			if err != nil {
				return buildError(cmd, err)
			}
			published, err := publishedDigests(cmd, t, r, a)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			ok := true
			for _, c := range builder.CompareOutputs(bi.Outputs, res.Info.Outputs) {
				pub, isPublished := published[c.Name]
				match := c.Match && (!isPublished || pub == c.Got)
				ok = ok && match
				verdict := "MATCH "
				if !match {
					verdict = "DIFFER"
				}
				fmt.Fprintf(w, "%s %s rebuilt %s recorded %s", verdict, c.Name, orNone(c.Got), c.Want)
				if isPublished {
					fmt.Fprintf(w, " published %s", pub)
				}
				fmt.Fprintln(w)
			}
			if !ok {
				return &exitError{code: 1, err: errors.New("rebuild of " + ref + " does not reproduce the published files (artifacts in " + o.Output + ")")}
			}
			return nil
		},
	}
	f.add(cmd.Flags(), rebuildKind) // the lock, refs, defconfig, ...: from the build-info, refused as flags
	f.reg.add(cmd)
	return cmd
}

// publishedDigests maps build-info output names to the layer digests published at ref.
func publishedDigests(cmd *cobra.Command, t content.Target, ref content.Reference, arch string) (map[string]string, error) {
	in, err := artifact.Inspect(cmd.Context(), t, ref)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range in.Platforms {
		if p.Arch != arch {
			continue
		}
		for _, f := range p.Files {
			switch f.Component {
			case artifact.Kernel:
				out[builder.KernelName] = f.Layer.Digest.String()
			case artifact.Initramfs:
				out[builder.InitramfsName] = f.Layer.Digest.String()
			}
		}
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
