package artifact

import (
	"context"
	"fmt"

	"github.com/ipa-oci/ipa-oci/images/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Inspection is what `ipa-oci inspect` shows about a reference.
type Inspection struct {
	Ref         string               `json:"ref"`
	Index       ocispec.Descriptor   `json:"index"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	Platforms   []PlatformFiles      `json:"platforms"`
	Referrers   []ocispec.Descriptor `json:"referrers"`
}

// PlatformFiles is one architecture's files and the Ironic settings that use them.
type PlatformFiles struct {
	Arch   string            `json:"arch"`
	Files  []File            `json:"files"`
	Ironic map[string]string `json:"ironic,omitempty"` // deploy_kernel, deploy_ramdisk
}

// InspectSource is where Inspect reads: the tag, the index and manifests, the referrers.
type InspectSource interface {
	Source
	content.Resolver
	content.ReferrerLister
}

// Inspect describes the index at ref in src: its platforms, each file's manifest and layer,
// the referrers of the index, and the oci:// URLs to paste into Ironic.
func Inspect(ctx context.Context, src InspectSource, ref content.Reference) (*Inspection, error) {
	desc, err := src.Resolve(ctx, ref.Identifier())
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	idx, idxDesc, err := fetchIndex(ctx, src, desc.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	in := &Inspection{Ref: ref.String(), Index: idxDesc, Annotations: idx.Annotations}
	archs := map[string]bool{}
	for _, e := range idx.Manifests {
		if e.Platform != nil {
			archs[e.Platform.Architecture] = true
		}
	}
	if len(archs) == 0 {
		archs[DefaultArch] = true // entries without platform (e.g. assembled with oras)
	}
	for _, arch := range sortedKeys(archs) {
		a, err := Resolve(ctx, src, ref, idxDesc, arch)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", ref, err)
		}
		in.Platforms = append(in.Platforms, PlatformFiles{Arch: arch, Files: a.Files, Ironic: a.IronicURLs()})
	}
	in.Referrers, err = src.Referrers(ctx, idxDesc.Digest)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	if in.Referrers == nil {
		in.Referrers = []ocispec.Descriptor{}
	}
	return in, nil
}
