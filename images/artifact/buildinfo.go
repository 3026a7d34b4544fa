package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationArch records which architecture's build a build-info referrer describes.
const AnnotationArch = "org.openstack.ironic-python-agent.arch"

// ErrNoBuildInfo matches the error of FetchBuildInfo when no build information is attached.
var ErrNoBuildInfo = errors.New("no build info attached")

// BuildInfoSource is where build information is read from: manifests, their referrers, blobs.
type BuildInfoSource interface {
	Source
	content.ReferrerLister
	content.BlobFetcher
}

// attachBuildInfo pushes info as a build-info referrer of subject.
func attachBuildInfo(ctx context.Context, t content.Pusher, subject ocispec.Descriptor, arch string, info []byte, meta Metadata) error {
	m, layer, err := buildInfoManifest(info, subject, meta, arch)
	if err != nil {
		return err
	}
	for _, b := range []content.Blob{emptyConfig(), layer} {
		if err := t.PushBlob(ctx, b); err != nil {
			return fmt.Errorf("build info: %w", err)
		}
	}
	if err := t.PushManifest(ctx, m); err != nil {
		return fmt.Errorf("build info: %w", err)
	}
	return nil
}

// buildInfos returns the build-info documents attached to subject, by architecture.
func buildInfos(ctx context.Context, src BuildInfoSource, subject digest.Digest) (map[string][]byte, error) {
	refs, err := src.Referrers(ctx, subject)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, d := range refs {
		// Some registries report the config media type as the artifactType (go-containerregistry's
		// in-memory registry does): look inside those manifests too.
		if d.ArtifactType != ArtifactTypeBuildInfo && d.ArtifactType != "" && d.ArtifactType != ocispec.MediaTypeEmptyJSON {
			continue
		}
		_, raw, err := src.FetchManifest(ctx, d.Digest.String())
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("referrer %s: %w", d.Digest, err)
		}
		if m.ArtifactType != ArtifactTypeBuildInfo {
			continue
		}
		if len(m.Layers) != 1 {
			return nil, fmt.Errorf("build info %s: not a single-layer manifest", d.Digest)
		}
		data, err := content.ReadAll(ctx, src, m.Layers[0])
		if err != nil {
			return nil, fmt.Errorf("build info %s: %w", d.Digest, err)
		}
		out[m.Annotations[AnnotationArch]] = data
	}
	return out, nil
}

// FetchBuildInfo returns the build-info JSON attached to the index at ref for arch: to the index
// itself, or else to the per-arch index (VERSION-ARCH) listing the same files for arch, where
// concurrent pushes of several architectures may have left it.
func FetchBuildInfo(ctx context.Context, src BuildInfoSource, ref content.Reference, arch string) ([]byte, error) {
	if arch == "" {
		arch = DefaultArch
	}
	idx, desc, err := fetchIndex(ctx, src, ref.Identifier())
	if err != nil {
		return nil, fmt.Errorf("build info of %s: %w", ref, err)
	}
	infos, err := buildInfos(ctx, src, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("build info of %s: %w", ref, err)
	}
	if info, ok := infos[arch]; ok {
		return info, nil
	}
	version := idx.Annotations[ocispec.AnnotationVersion]
	if version == "" {
		version = ref.Tag
	}
	if version != "" {
		archIdx, archDesc, err := fetchIndex(ctx, src, perArchTag(version, arch))
		if err == nil && sameArchEntries(idx, archIdx, arch) {
			infos, err := buildInfos(ctx, src, archDesc.Digest)
			if err != nil {
				return nil, fmt.Errorf("build info of %s: %w", ref, err)
			}
			if info, ok := infos[arch]; ok {
				return info, nil
			}
		}
	}
	return nil, errkind.Mark(ErrNoBuildInfo, "build info of %s: none attached for %s", ref, arch)
}

// sameArchEntries reports whether a and b list the same manifests for arch.
func sameArchEntries(a, b *ocispec.Index, arch string) bool {
	pick := func(idx *ocispec.Index) []digest.Digest {
		var out []digest.Digest
		for _, e := range idx.Manifests {
			if entryArch(e) == arch {
				out = append(out, e.Digest)
			}
		}
		return out
	}
	da, db := pick(a), pick(b)
	return len(da) > 0 && fmt.Sprint(da) == fmt.Sprint(db)
}
