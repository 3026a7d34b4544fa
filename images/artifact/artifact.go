package artifact

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one component of one architecture as published: its manifest and its single layer.
type File struct {
	Component Component          `json:"component"`
	Name      string             `json:"name"` // file name in a pull destination
	Manifest  ocispec.Descriptor `json:"manifest"`
	Layer     ocispec.Descriptor `json:"layer"`
}

// Artifact is one architecture's kernel and initramfs as found behind a reference.
type Artifact struct {
	Ref        content.Reference
	Index      ocispec.Descriptor
	IndexData  ocispec.Index
	Arch       string
	IPAVersion string
	Files      []File // kernel, initramfs
}

// Source is where Resolve reads an index and its manifests; String names it in messages.
type Source interface {
	content.ManifestFetcher
	fmt.Stringer
}

// Resolve reads the index with digest index.Digest from src (which ref names) and validates
// the kernel and initramfs manifests for arch: entries for linux/arch first, then entries
// without a platform (as oras assembles them).
func Resolve(ctx context.Context, src Source, ref content.Reference, index ocispec.Descriptor, arch string) (*Artifact, error) {
	idx, desc, err := fetchIndex(ctx, src, index.Digest.String())
	if err != nil {
		return nil, err
	}
	a := &Artifact{Ref: ref, Index: desc, IndexData: *idx, Arch: arch, IPAVersion: idx.Annotations[ocispec.AnnotationVersion]}
	byComponent := map[Component]File{}
	for _, pass := range []bool{true, false} { // platform-specific entries first, then entries without platform
		for _, e := range idx.Manifests {
			if (e.Platform != nil) != pass || (e.Platform != nil && (e.Platform.Architecture != arch || e.Platform.OS != "linux")) {
				continue
			}
			f, err := resolveFile(ctx, src, e)
			if err != nil {
				return nil, err
			}
			if _, dup := byComponent[f.Component]; dup {
				if pass {
					return nil, fmt.Errorf("index %s lists two %s manifests for %s", desc.Digest, f.Component, arch)
				}
				continue
			}
			f.Name = FileName(f.Component, arch)
			byComponent[f.Component] = f
		}
	}
	for _, c := range Components() {
		f, ok := byComponent[c]
		if !ok {
			return nil, fmt.Errorf("no %s for linux/%s in index %s (platforms: %s)", c, arch, desc.Digest, platforms(idx))
		}
		a.Files = append(a.Files, f)
	}
	return a, nil
}

func platforms(idx *ocispec.Index) string {
	seen := map[string]bool{}
	var out []string
	for _, e := range idx.Manifests {
		p := "none"
		if e.Platform != nil {
			p = e.Platform.OS + "/" + e.Platform.Architecture
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}

// resolveFile fetches and validates one artifact manifest of the ipa-oci format.
func resolveFile(ctx context.Context, t content.ManifestFetcher, e ocispec.Descriptor) (File, error) {
	if e.MediaType != ocispec.MediaTypeImageManifest {
		return File{}, fmt.Errorf("manifest %s: media type %q, want %s", e.Digest, e.MediaType, ocispec.MediaTypeImageManifest)
	}
	desc, raw, err := t.FetchManifest(ctx, e.Digest.String())
	if err != nil {
		return File{}, err
	}
	if desc.Size != e.Size {
		return File{}, fmt.Errorf("manifest %s: %d bytes, index says %d", e.Digest, desc.Size, e.Size)
	}
	m, c, err := parseArtifactManifest(raw)
	if err != nil {
		return File{}, fmt.Errorf("manifest %s: %w", e.Digest, err)
	}
	return File{Component: c, Manifest: ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size, ArtifactType: m.ArtifactType}, Layer: m.Layers[0]}, nil
}

// parseArtifactManifest checks that raw is a kernel or initramfs artifact manifest: known
// artifactType, exactly one layer, a safe title, a sha256 layer digest.
func parseArtifactManifest(raw []byte) (ocispec.Manifest, Component, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, "", fmt.Errorf("not JSON: %w", err)
	}
	at := m.ArtifactType
	if at == "" {
		at = m.Config.MediaType
	}
	c, ok := componentForArtifactType(at)
	if !ok {
		return m, "", fmt.Errorf("unknown artifactType %q: want %s or %s", at, ArtifactTypeKernel, ArtifactTypeInitramfs)
	}
	if len(m.Layers) != 1 {
		return m, "", fmt.Errorf("%d layers: an ipa-oci artifact manifest has exactly one", len(m.Layers))
	}
	l := m.Layers[0]
	if title, ok := l.Annotations[ocispec.AnnotationTitle]; ok {
		if err := checkTitle(title); err != nil {
			return m, "", err
		}
	}
	if l.Digest.Algorithm() != digest.SHA256 || l.Digest.Validate() != nil {
		return m, "", fmt.Errorf("layer digest %q: want a sha256 digest", l.Digest)
	}
	if l.Size < 0 {
		return m, "", fmt.Errorf("layer size %d", l.Size)
	}
	return m, c, nil
}

// checkTitle refuses titles that could write outside the destination.
func checkTitle(title string) error {
	if title == "" || strings.ContainsAny(title, "/\\\x00") || title == "." || title == ".." ||
		strings.Contains(title, "..") || path.Clean(title) != title {
		return fmt.Errorf("layer title %q: not a plain file name (no '/', '..' or NUL)", title)
	}
	return nil
}

// IronicURL is the oci:// URL Ironic accepts for deploy_kernel/deploy_ramdisk: by manifest
// digest. It is empty for an OCI layout, which Ironic cannot reach.
func (a *Artifact) IronicURL(f File) string {
	if a.Ref.Repository == "" {
		return ""
	}
	return fmt.Sprintf("oci://%s@%s", a.Ref.Repository, f.Manifest.Digest)
}

// IronicURLs maps Ironic's driver_info fields (deploy_kernel, deploy_ramdisk) to the
// IronicURL of each file; nil when Ironic cannot reach the target.
func (a *Artifact) IronicURLs() map[string]string {
	var out map[string]string
	for _, f := range a.Files {
		if u := a.IronicURL(f); u != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[f.Component.IronicSetting()] = u
		}
	}
	return out
}

// fetchIndex returns the ipa-oci index at reference, or an error matching content.ErrNotFound.
func fetchIndex(ctx context.Context, src Source, reference string) (*ocispec.Index, ocispec.Descriptor, error) {
	desc, raw, err := src.FetchManifest(ctx, reference)
	if err != nil {
		return nil, desc, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, desc, fmt.Errorf("%s:%s: not JSON: %w", src, reference, err)
	}
	if idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, desc, fmt.Errorf("%s:%s holds a %q, not an OCI image index: use a tag that ipa-oci pushed", src, reference, idx.MediaType)
	}
	desc.MediaType = idx.MediaType
	return &idx, desc, nil
}
