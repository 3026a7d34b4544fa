package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutTarget is an OCI image layout directory (oci-layout, index.json, blobs/): the embedded
// default that needs no server, and the format of air-gapped copies. Tags are index.json entries
// annotated org.opencontainers.image.ref.name.
//
// It is written by hand rather than with go-containerregistry's layout package or oras-go's
// content/oci, which get what matters here wrong (docs/layout.md): gcr's WriteBlob writes a
// blob in place under its digest without checking it, so an interrupted write leaves a
// truncated blob that a later write of the right bytes does not replace; oras-go's store holds
// index.json in memory from the moment it is opened and rewrites it whole, so two writers lose
// each other's tags. Here a blob is verified and renamed into place, and every index.json
// change is a read-modify-write under a lock on the directory, replaced atomically.
type layoutTarget struct {
	dir string
}

func newLayout(dir string) *layoutTarget { return &layoutTarget{dir: dir} }

func (l *layoutTarget) String() string { return "oci:" + l.dir }

func (l *layoutTarget) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (l *layoutTarget) readIndex() (ocispec.Index, error) {
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return idx, fmt.Errorf("%s: no OCI image layout here (index.json missing): %w", l, content.ErrNotFound)
	} else if err != nil {
		return idx, fmt.Errorf("%s: %w", l, err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%s: index.json: %w", l, err)
	}
	return idx, nil
}

func (l *layoutTarget) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	if d, err := digest.Parse(reference); err == nil {
		desc, _, err := l.FetchManifest(ctx, d.String())
		return desc, err
	}
	idx, err := l.readIndex()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == reference {
			return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: tag %q: %w", l, reference, content.ErrNotFound)
}

func (l *layoutTarget) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	d, err := digest.Parse(reference)
	if err != nil {
		desc, err := l.Resolve(ctx, reference)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		d = desc.Digest
	}
	f, err := os.Open(l.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: manifest %s: %w", l, d, content.ErrNotFound)
	} else if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, content.MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if len(b) > content.MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: manifest %s larger than %d bytes", l, d, content.MaxManifestSize)
	}
	if got := digest.FromBytes(b); got != d {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: manifest %s has digest %s: the layout is corrupt", l, d, got)
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &probe)
	return ocispec.Descriptor{MediaType: probe.MediaType, Digest: d, Size: int64(len(b))}, b, nil
}

func (l *layoutTarget) FetchBlob(_ context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(l.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: blob %s: %w", l, desc.Digest, content.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (l *layoutTarget) PushBlob(ctx context.Context, b content.Blob) error {
	if err := l.init(); err != nil {
		return err
	}
	dst := l.blobPath(b.Descriptor.Digest)
	if st, err := os.Stat(dst); err == nil && st.Size() == b.Descriptor.Size {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("%s: %w", l, err)
	}
	src, err := b.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	return content.WriteVerified(ctx, dst, src, b.Descriptor)
}

// PushManifest stores m and lists it, untagged, in index.json.
func (l *layoutTarget) PushManifest(ctx context.Context, m content.Blob) error {
	return l.putManifest(ctx, m, "")
}

// Tag stores m and makes it the index.json entry named tag.
func (l *layoutTarget) Tag(ctx context.Context, m content.Blob, tag string) error {
	return l.putManifest(ctx, m, tag)
}

func (l *layoutTarget) putManifest(ctx context.Context, b content.Blob, tag string) error {
	if err := l.PushBlob(ctx, b); err != nil {
		return err
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := l.readIndex()
	if err != nil {
		return err
	}
	entry := ocispec.Descriptor{MediaType: b.Descriptor.MediaType, Digest: b.Descriptor.Digest, Size: b.Descriptor.Size}
	var kept []ocispec.Descriptor
	for _, m := range idx.Manifests {
		switch name := m.Annotations[ocispec.AnnotationRefName]; {
		case tag != "" && name == tag: // re-tagged: drop the old entry
		case tag == "" && name == "" && m.Digest == entry.Digest: // already listed untagged
			return nil
		default:
			kept = append(kept, m)
		}
	}
	if tag != "" {
		entry.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	}
	idx.Manifests = append(kept, entry)
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(l.dir, "index.json"), raw)
}

// Referrers scans the manifests listed in index.json for subject d.
func (l *layoutTarget) Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	idx, err := l.readIndex()
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, e := range idx.Manifests {
		if e.MediaType != ocispec.MediaTypeImageManifest || seen[e.Digest] {
			continue
		}
		seen[e.Digest] = true
		_, raw, err := l.FetchManifest(ctx, e.Digest.String())
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if json.Unmarshal(raw, &m) == nil && m.Subject != nil && m.Subject.Digest == d {
			out = append(out, ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size,
				ArtifactType: m.ArtifactType, Annotations: m.Annotations})
		}
	}
	return out, nil
}

// init creates the layout's skeleton if the directory holds none yet.
func (l *layoutTarget) init() error {
	if _, err := os.Stat(filepath.Join(l.dir, ocispec.ImageLayoutFile)); err == nil {
		return nil
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", l, err)
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := fsutil.WriteFileAtomic(filepath.Join(l.dir, ocispec.ImageLayoutFile), layout); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(l.dir, "index.json")); err == nil {
		return nil
	}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}})
	return fsutil.WriteFileAtomic(filepath.Join(l.dir, "index.json"), idx)
}

// lock takes an exclusive flock(2) on the layout directory, held while index.json is read,
// changed and replaced: writers in other processes (or other targets on the same directory)
// wait instead of overwriting each other's changes.
func (l *layoutTarget) lock() (unlock func(), err error) {
	d, err := os.Open(l.dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", l, err)
	}
	return func() { syscall.Flock(int(d.Fd()), syscall.LOCK_UN); d.Close() }, nil
}
