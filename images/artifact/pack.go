package artifact

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Metadata is what the index and every manifest are annotated with.
type Metadata struct {
	IPAVersion string    // org.opencontainers.image.version
	Revision   string    // org.opencontainers.image.revision (IPA commit)
	Source     string    // org.opencontainers.image.source (IPA repository URL)
	Created    time.Time // org.opencontainers.image.created; zero = omitted (keeps digests stable)
}

func (m Metadata) annotations() map[string]string {
	a := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(ocispec.AnnotationVersion, m.IPAVersion)
	set(ocispec.AnnotationRevision, m.Revision)
	set(ocispec.AnnotationSource, m.Source)
	if !m.Created.IsZero() {
		a[ocispec.AnnotationCreated] = m.Created.UTC().Format(time.RFC3339)
	}
	return a
}

// packed is the result of packing one architecture, in component order.
type packed struct {
	manifests []content.Blob // kernel, initramfs
	entries   []ocispec.Descriptor
	layers    []content.Blob
}

// packArch builds the two single-layer artifact manifests for arch from the layer blobs,
// returning them with the index entries that point at them.
func packArch(arch string, layers map[Component]content.Blob, meta Metadata) (packed, error) {
	var p packed
	for _, c := range Components() {
		layer, ok := layers[c]
		if !ok {
			return packed{}, fmt.Errorf("pack %s: no %s", arch, c)
		}
		layer.Descriptor.MediaType = c.ArtifactType()
		layer.Descriptor.Annotations = map[string]string{ocispec.AnnotationTitle: c.Title()}
		m := ocispec.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: c.ArtifactType(),
			Config:       ocispec.DescriptorEmptyJSON,
			Layers:       []ocispec.Descriptor{layer.Descriptor},
			Annotations:  meta.annotations(),
		}
		mb, err := marshalManifest(m)
		if err != nil {
			return packed{}, err
		}
		desc := ocispec.Descriptor{
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: c.ArtifactType(),
			Digest:       mb.Descriptor.Digest,
			Size:         mb.Descriptor.Size,
			Platform:     &ocispec.Platform{OS: "linux", Architecture: arch},
			Annotations:  map[string]string{AnnotationComponent: string(c)},
		}
		p.manifests = append(p.manifests, mb)
		p.entries = append(p.entries, desc)
		p.layers = append(p.layers, layer)
	}
	return p, nil
}

// buildIndex merges entries into base (which may be nil): entries for the architectures in
// entries replace base's entries for those architectures; the result is sorted by
// architecture and component so that the same inputs always give the same digest.
func buildIndex(base *ocispec.Index, entries []ocispec.Descriptor, meta Metadata) (content.Blob, error) {
	replaced := map[string]bool{}
	for _, e := range entries {
		replaced[entryArch(e)] = true
	}
	var all []ocispec.Descriptor
	if base != nil {
		for _, e := range base.Manifests {
			if !replaced[entryArch(e)] {
				all = append(all, e)
			}
		}
	}
	all = append(all, entries...)
	sort.SliceStable(all, func(i, j int) bool {
		ai, aj := entryArch(all[i]), entryArch(all[j])
		if ai != aj {
			return ai < aj
		}
		return all[i].Annotations[AnnotationComponent] > all[j].Annotations[AnnotationComponent] // kernel before initramfs
	})
	idx := ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageIndex,
		Manifests:   all,
		Annotations: meta.annotations(),
	}
	return marshalManifest(idx)
}

func entryArch(d ocispec.Descriptor) string {
	if d.Platform == nil {
		return ""
	}
	return d.Platform.Architecture
}

// marshalManifest serialises a manifest or index and describes the bytes.
func marshalManifest(v any) (content.Blob, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return content.Blob{}, fmt.Errorf("marshal manifest: %w", err)
	}
	mt := ocispec.MediaTypeImageManifest
	if _, ok := v.(ocispec.Index); ok {
		mt = ocispec.MediaTypeImageIndex
	}
	return content.Blob{
		Descriptor: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))},
		Data:       b,
	}, nil
}

// buildInfoManifest packs a build-info JSON document as a referrer of subject.
func buildInfoManifest(info []byte, subject ocispec.Descriptor, meta Metadata, arch string) (manifest, layer content.Blob, err error) {
	if !json.Valid(info) {
		return content.Blob{}, content.Blob{}, fmt.Errorf("build info is not valid JSON")
	}
	layer = content.Blob{
		Descriptor: ocispec.Descriptor{
			MediaType:   ArtifactTypeBuildInfo,
			Digest:      digest.FromBytes(info),
			Size:        int64(len(info)),
			Annotations: map[string]string{ocispec.AnnotationTitle: "build-info.json"},
		},
		Data: info,
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeBuildInfo,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{layer.Descriptor},
		Subject:      &subj,
		Annotations:  meta.annotations(),
	}
	m.Annotations[AnnotationArch] = arch
	manifest, err = marshalManifest(m)
	return manifest, layer, err
}
