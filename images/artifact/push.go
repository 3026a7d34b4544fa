package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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

// Push uploads req's files to t under ref (a tag), merging them into the index already at
// that tag (replacing the same architecture), tags the per-architecture index VERSION-ARCH and
// any extra tags, attaches build info, and returns the merged index's descriptor.
func Push(ctx context.Context, t content.Target, ref content.Reference, req PushRequest, opts ...Option) (ocispec.Descriptor, error) {
	o := makeOptions(opts...)
	if ref.Tag == "" {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: push to a tag (HOST/REPO:TAG), not a digest", ref)
	}
	if req.Arch == "" {
		req.Arch = DefaultArch
	}
	if err := arches.Validate(req.Arch); err != nil {
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
	log := o.log.WithField("ref", ref.String())

	layers := map[Component]content.Blob{}
	for c, path := range map[Component]string{Kernel: req.Kernel, Initramfs: req.Initramfs} {
		d, size, err := content.FileDigest(ctx, path)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
		layers[c] = content.Blob{Descriptor: ocispec.Descriptor{Digest: d, Size: size}, Path: path}
	}
	p, err := packArch(req.Arch, layers, meta)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	for _, b := range append([]content.Blob{emptyConfig()}, p.layers...) {
		log.WithFields(map[string]any{"digest": b.Descriptor.Digest, "size": b.Descriptor.Size}).Debug("pushing blob")
		if err := t.PushBlob(ctx, b); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	for _, m := range p.manifests {
		if err := t.PushManifest(ctx, m); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}

	version := req.IPAVersion
	if version == "" {
		version = ref.Tag
	}
	// The per-architecture index first, with its build info: it is what every merge into a
	// shared tag reads for this architecture, so a push running at the same time for another
	// architecture picks it up (see mergeIntoTag).
	archIdx, err := buildIndex(nil, p.entries, meta)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	archTag := perArchTag(version, req.Arch)
	if err := t.Tag(ctx, archIdx, archTag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: tag %s: %w", ref, archTag, err)
	}
	if req.BuildInfo != nil {
		if err := attachBuildInfo(ctx, t, archIdx.Descriptor, req.Arch, req.BuildInfo, meta); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}

	var merged ocispec.Descriptor
	for _, tag := range append([]string{ref.Tag}, req.Tags...) {
		if tag == archTag {
			continue
		}
		m, err := mergeIntoTag(ctx, o, t, tag, version, meta)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: tag %s: %w", ref, tag, err)
		}
		if tag == ref.Tag {
			merged = m.desc
		}
		// Build information: one per architecture on the merged index; this push's, and the
		// others' from where their entries came (their per-arch index, or the replaced index).
		infos := map[string][]byte{}
		for arch, src := range m.sources {
			if arch == req.Arch {
				continue
			}
			carried, err := buildInfos(ctx, t, src)
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
			}
			if info, ok := carried[arch]; ok {
				infos[arch] = info
			}
		}
		if req.BuildInfo != nil {
			infos[req.Arch] = req.BuildInfo
		}
		for _, arch := range sortedKeys(infos) {
			if err := attachBuildInfo(ctx, t, m.desc, arch, infos[arch], meta); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
			}
		}
	}
	if ref.Tag == archTag {
		merged = archIdx.Descriptor
	}
	log.WithFields(map[string]any{"index": merged.Digest, "arch": req.Arch, "arch_tag": archTag}).Info("pushed")
	return merged, nil
}

// emptyConfig is the OCI empty descriptor's blob, the config of every ipa-oci manifest.
func emptyConfig() content.Blob {
	b := content.Blob{Descriptor: ocispec.DescriptorEmptyJSON, Data: []byte("{}")}
	b.Descriptor.Data = nil
	return b
}

// perArchTag is the tag of version's index for arch alone: VERSION-ARCH.
func perArchTag(version, arch string) string { return version + "-" + arch }

// mergeAttempts bounds the writes of one merge into a tag.
const mergeAttempts = 10

// mergedIndex is what mergeIntoTag left at a tag.
type mergedIndex struct {
	desc ocispec.Descriptor
	// sources names, per architecture, the index its entries were taken from: its per-arch
	// index, or the index that was at the tag before.
	sources map[string]digest.Digest
}

// mergeIntoTag makes tag's index list every architecture: the entries of its per-arch index
// VERSION-ARCH where that exists, otherwise the entries already at tag. Registries offer no
// compare-and-swap, and a CI matrix pushes its architectures at the same time: so it writes,
// then re-reads the tag and the per-arch tags and writes again, until a read shows the tag
// already listing what it would write (at most mergeAttempts writes). Since every push writes
// its per-arch tag before it merges, of two concurrent pushes at least the later one sees the
// other's per-arch tag, and neither stops before the tag lists both.
func mergeIntoTag(ctx context.Context, o *options, t content.Target, tag, version string, meta Metadata) (mergedIndex, error) {
	var before digest.Digest // the index this merge replaced, for carrying build info over
	for attempt := 0; ; attempt++ {
		base, baseDesc, err := fetchIndex(ctx, t, tag)
		if err != nil && !errors.Is(err, content.ErrNotFound) {
			return mergedIndex{}, err
		}
		if attempt == 0 && base != nil {
			before = baseDesc.Digest
		}
		sources := map[string]digest.Digest{}
		if base != nil && before != "" {
			for _, e := range base.Manifests {
				sources[entryArch(e)] = before
			}
		}
		var entries []ocispec.Descriptor
		for _, arch := range arches.All() {
			archIdx, archDesc, err := fetchIndex(ctx, t, perArchTag(version, arch))
			if errors.Is(err, content.ErrNotFound) {
				continue
			} else if err != nil {
				return mergedIndex{}, err
			}
			for _, e := range archIdx.Manifests {
				if entryArch(e) == arch {
					entries = append(entries, e)
					sources[arch] = archDesc.Digest
				}
			}
		}
		want, err := buildIndex(base, entries, meta)
		if err != nil {
			return mergedIndex{}, err
		}
		if base != nil && sameEntries(base.Manifests, want) {
			return mergedIndex{desc: baseDesc, sources: sources}, nil
		}
		if attempt == mergeAttempts {
			return mergedIndex{}, fmt.Errorf("the tag changed under each of %d merges (another push of the same version and architecture running?); push again", mergeAttempts)
		}
		if attempt > 0 {
			o.log.WithFields(map[string]any{"tag": tag, "attempt": attempt}).Info("tag changed by another push; merging again")
		}
		if err := t.Tag(ctx, want, tag); err != nil {
			return mergedIndex{}, err
		}
	}
}

// sameEntries reports whether index blob b lists exactly the manifests have lists.
func sameEntries(have []ocispec.Descriptor, b content.Blob) bool {
	var idx ocispec.Index
	if err := json.Unmarshal(b.Data, &idx); err != nil || len(idx.Manifests) != len(have) {
		return false
	}
	for i, e := range idx.Manifests {
		h := have[i]
		if e.Digest != h.Digest || entryArch(e) != entryArch(h) || e.Annotations[AnnotationComponent] != h.Annotations[AnnotationComponent] {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
