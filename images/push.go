package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationArch records which architecture's build a build-info referrer describes.
const AnnotationArch = "org.openstack.ironic-python-agent.arch"

// PushRequest is one architecture's kernel and initramfs and what to annotate them with.
type PushRequest struct {
	Arch              string // amd64 (default) or arm64
	Kernel, Initramfs string // file paths
	IPAVersion        string // org.opencontainers.image.version; also names the per-arch tag V-<arch>
	Revision, Source  string
	Created           time.Time // zero: no created annotation (digests depend only on the files)
	BuildInfo         []byte    // optional JSON, attached as a referrer of the index
	Tags              []string  // extra tags for the merged index
}

// Push uploads req's files to ref (a tag), merging them into the index already at that tag
// (replacing the same architecture), tags the per-architecture index V-<arch> and any extra
// tags, attaches build info, and returns the merged index's descriptor.
func Push(ctx context.Context, ref string, req PushRequest, opts ...Option) (ocispec.Descriptor, error) {
	o := makeOptions(opts...)
	r, err := ParseReference(ref, opts...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if r.Tag == "" {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: push to a tag (HOST/REPO:TAG), not a digest", ref)
	}
	if req.Arch == "" {
		req.Arch = DefaultArch
	}
	if err := ValidateArch(req.Arch); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := CheckKernel(req.Kernel); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := CheckInitramfs(req.Initramfs); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if req.BuildInfo != nil && !json.Valid(req.BuildInfo) {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: build info is not valid JSON", ref)
	}
	meta := Metadata{IPAVersion: req.IPAVersion, Revision: req.Revision, Source: req.Source, Created: req.Created}
	log := o.log.WithField("ref", ref)

	layers := map[Component]Blob{}
	for c, path := range map[Component]string{Kernel: req.Kernel, Initramfs: req.Initramfs} {
		d, size, err := fileDigest(path)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
		layers[c] = Blob{Descriptor: ocispec.Descriptor{Digest: d, Size: size}, Path: path}
	}
	p, err := packArch(req.Arch, layers, meta)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	t := r.Target
	empty := Blob{Descriptor: ocispec.DescriptorEmptyJSON, Data: []byte("{}")}
	empty.Descriptor.Data = nil
	for _, b := range append([]Blob{empty}, p.layers...) {
		log.WithFields(map[string]any{"digest": b.Descriptor.Digest, "size": b.Descriptor.Size}).Debug("pushing blob")
		if err := t.PushBlob(ctx, b); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	for _, m := range p.manifests {
		if err := t.PushManifest(ctx, m, ""); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}

	base, baseDesc, err := fetchIndex(ctx, t, r.Tag)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	idx, err := buildIndex(base, p.entries, meta)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	archIdx, err := buildIndex(nil, p.entries, meta)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	version := req.IPAVersion
	if version == "" {
		version = r.Tag
	}
	archTag := version + "-" + req.Arch
	for _, tag := range append([]string{r.Tag}, req.Tags...) {
		if err := t.PushManifest(ctx, idx, tag); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: tag %s: %w", ref, tag, err)
		}
	}
	if err := t.PushManifest(ctx, archIdx, archTag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: tag %s: %w", ref, archTag, err)
	}
	log.WithFields(map[string]any{"index": idx.Descriptor.Digest, "arch": req.Arch, "arch_tag": archTag}).Info("pushed")

	// Build information: this push's, on both indexes; other architectures' carried over from
	// the index this push replaced, so the merged index keeps one per architecture.
	infos := map[string][]byte{}
	if base != nil {
		carried, err := buildInfos(ctx, o, t, baseDesc.Digest)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
		for arch, info := range carried {
			if arch != req.Arch {
				infos[arch] = info
			}
		}
	}
	if req.BuildInfo != nil {
		infos[req.Arch] = req.BuildInfo
		if err := attachBuildInfo(ctx, t, archIdx.Descriptor, req.Arch, req.BuildInfo, meta); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	for arch, info := range infos {
		if err := attachBuildInfo(ctx, t, idx.Descriptor, arch, info, meta); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return idx.Descriptor, nil
}

// fetchIndex returns the ipa-oci index at reference, or ErrNotFound.
func fetchIndex(ctx context.Context, t Target, reference string) (*ocispec.Index, ocispec.Descriptor, error) {
	desc, raw, err := t.FetchManifest(ctx, reference)
	if err != nil {
		return nil, desc, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, desc, fmt.Errorf("%s:%s: not JSON: %w", t, reference, err)
	}
	if idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, desc, fmt.Errorf("%s:%s holds a %q, not an OCI image index: use a tag that ipa-oci pushed", t, reference, idx.MediaType)
	}
	desc.MediaType = idx.MediaType
	return &idx, desc, nil
}

// attachBuildInfo pushes info as a build-info referrer of subject.
func attachBuildInfo(ctx context.Context, t Target, subject ocispec.Descriptor, arch string, info []byte, meta Metadata) error {
	m, layer, err := buildInfoManifest(info, subject, meta, arch)
	if err != nil {
		return err
	}
	empty := Blob{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: ocispec.DescriptorEmptyJSON.Digest, Size: 2}, Data: []byte("{}")}
	for _, b := range []Blob{empty, layer} {
		if err := t.PushBlob(ctx, b); err != nil {
			return fmt.Errorf("build info: %w", err)
		}
	}
	if err := t.PushManifest(ctx, m, ""); err != nil {
		return fmt.Errorf("build info: %w", err)
	}
	return nil
}

// buildInfos returns the build-info documents attached to subject, by architecture.
func buildInfos(ctx context.Context, o *options, t Target, subject digest.Digest) (map[string][]byte, error) {
	refs, err := t.Referrers(ctx, subject)
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
		_, raw, err := t.FetchManifest(ctx, d.Digest.String())
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
		data, err := fetchSmallBlob(ctx, o, t, m.Layers[0])
		if err != nil {
			return nil, fmt.Errorf("build info %s: %w", d.Digest, err)
		}
		out[m.Annotations[AnnotationArch]] = data
	}
	return out, nil
}

// FetchBuildInfo returns the build-info JSON attached to the index at ref for arch.
func FetchBuildInfo(ctx context.Context, ref string, arch string, opts ...Option) ([]byte, error) {
	r, err := ParseReference(ref, opts...)
	if err != nil {
		return nil, err
	}
	desc, err := r.Target.Resolve(ctx, r.Identifier())
	if err != nil {
		return nil, fmt.Errorf("build info of %s: %w", ref, err)
	}
	infos, err := buildInfos(ctx, makeOptions(opts...), r.Target, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("build info of %s: %w", ref, err)
	}
	if arch == "" {
		arch = DefaultArch
	}
	info, ok := infos[arch]
	if !ok {
		return nil, fmt.Errorf("build info of %s: none attached for %s (push with --build-info)", ref, arch)
	}
	return info, nil
}

// fetchSmallBlob reads a small blob (build info) fully and verifies it.
func fetchSmallBlob(ctx context.Context, o *options, t Target, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("blob %s: %d bytes is too large", desc.Digest, desc.Size)
	}
	var buf bytesBuffer
	err := o.retry(ctx, "fetch blob "+desc.Digest.String(), func() error {
		buf.Reset()
		vw := newVerifyingWriter(&buf, desc)
		if err := fetchInto(ctx, t, desc, 0, vw); err != nil {
			return err
		}
		return vw.check()
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
