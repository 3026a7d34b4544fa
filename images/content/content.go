// Package content is what the other images packages share: a blob and its descriptor, a
// reference, the small interfaces a store of artifacts implements (oras-go style: Resolver,
// Fetcher, Pusher, Tagger, ReferrerLister), the errors they return, and the discipline of
// content-addressed bytes: size and digest checked as bytes stream, files written under a
// temporary name, fsynced and renamed, so that nothing half-written is ever visible.
package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize bounds how much of a manifest is read (the distribution spec's 4 MiB).
const MaxManifestSize = 4 << 20

// Blob is a piece of content with its descriptor; Data is nil for large file-backed blobs.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
	Path       string // file holding the content when Data is nil
}

// Open returns the blob's bytes.
func (b Blob) Open() (io.ReadCloser, error) {
	if b.Data != nil {
		return io.NopCloser(bytes.NewReader(b.Data)), nil
	}
	return os.Open(b.Path)
}

// Reference names one artifact in a target: a tag or a digest, as the user wrote it.
type Reference struct {
	Name   string        // as written: HOST/REPO:TAG, HOST/REPO@sha256:..., oci:DIR:TAG
	Tag    string        // set for tag references
	Digest digest.Digest // set for digest references
	// Repository is HOST/REPO for a registry reference (what Ironic's oci:// URLs name), empty
	// for an OCI layout, which Ironic cannot reach.
	Repository string
}

// String returns the reference as the user wrote it.
func (r Reference) String() string { return r.Name }

// Identifier is the tag or digest string.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Resolver resolves a tag or digest to the descriptor it points at (one small request).
type Resolver interface {
	Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error)
}

// ManifestFetcher returns a manifest or index by tag or digest; a digest reference is verified.
type ManifestFetcher interface {
	FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error)
}

// BlobFetcher streams a blob from offset. The reader resumes where a transfer broke, under the
// store's retry policy; the caller verifies size and digest.
type BlobFetcher interface {
	FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
}

// Fetcher reads manifests and blobs.
type Fetcher interface {
	ManifestFetcher
	BlobFetcher
}

// Pusher stores blobs, and manifests under their digest. A manifest with a subject is made
// findable through ReferrerLister.
type Pusher interface {
	PushBlob(ctx context.Context, b Blob) error
	PushManifest(ctx context.Context, m Blob) error
}

// Tagger points a tag at manifest m, storing m if it is not stored yet.
type Tagger interface {
	Tag(ctx context.Context, m Blob, tag string) error
}

// ReferrerLister lists the manifests whose subject is the manifest with digest subject.
type ReferrerLister interface {
	Referrers(ctx context.Context, subject digest.Digest) ([]ocispec.Descriptor, error)
}

// ReadOnlyTarget is a place artifacts are read from; String names it in messages.
type ReadOnlyTarget interface {
	Resolver
	Fetcher
	ReferrerLister
	fmt.Stringer
}

// Target is a place artifacts are read from and written to: a registry repository or an OCI
// image layout directory.
type Target interface {
	ReadOnlyTarget
	Pusher
	Tagger
}

// ErrNotFound is returned (wrapped) when a tag, manifest or blob does not exist.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is returned (wrapped) when content does not match its descriptor.
var ErrDigestMismatch = errors.New("digest mismatch")
