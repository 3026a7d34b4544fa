package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Target is a place artifacts live: a registry repository or an OCI image layout directory.
// Push, pull and inspect are written once against it.
type Target interface {
	// Resolve returns the descriptor a tag or digest currently points at (one small request).
	Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error)
	// FetchManifest returns a manifest or index by tag or digest; a digest reference is verified.
	FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error)
	// FetchBlob streams a blob starting at offset with one request: the caller verifies size
	// and digest, and retries (resuming) under the retry policy.
	FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
	// PushBlob stores a blob unless the target already has it.
	PushBlob(ctx context.Context, b Blob) error
	// PushManifest stores a manifest or index under its digest and, if tag is set, under tag.
	// A manifest with a subject is made findable through Referrers.
	PushManifest(ctx context.Context, b Blob, tag string) error
	// Referrers lists the manifests whose subject is d.
	Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error)
	// String names the target in logs and errors.
	String() string
}

// ErrNotFound is returned (wrapped) when a tag, manifest or blob does not exist.
var ErrNotFound = errors.New("not found")

// notFoundError is a complete "not found" message that matches ErrNotFound.
type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// Reference is a parsed artifact reference: a target plus a tag or digest.
type Reference struct {
	Target Target
	Tag    string        // set for tag references
	Digest digest.Digest // set for digest references
	// Registry and Repository are set for registry references (for oci:// URLs).
	Registry, Repository string
	raw                  string
}

// String returns the reference as the user wrote it.
func (r Reference) String() string { return r.raw }

// Identifier is the tag or digest string.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// ParseReference parses HOST[:PORT]/REPO:TAG, HOST[:PORT]/REPO@sha256:..., or oci:DIR:TAG /
// oci:DIR@sha256:... (an OCI image layout directory).
func ParseReference(s string, opts ...Option) (Reference, error) {
	o := makeOptions(opts...)
	if rest, ok := strings.CutPrefix(s, "oci:"); ok {
		return parseLayoutReference(s, rest)
	}
	return parseRegistryReference(s, o)
}

func parseLayoutReference(raw, rest string) (Reference, error) {
	dir, id := rest, "latest"
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		dir, id = rest[:i], rest[i+1:]
	} else if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i:], "/") {
		dir, id = rest[:i], rest[i+1:]
	}
	if dir == "" {
		return Reference{}, fmt.Errorf("reference %q: oci: needs a directory, as in oci:/srv/ipa-layout:2024.2", raw)
	}
	ref := Reference{Target: newLayoutTarget(dir), raw: raw}
	if d, err := digest.Parse(id); err == nil {
		ref.Digest = d
	} else if strings.Contains(id, ":") {
		return Reference{}, fmt.Errorf("reference %q: bad digest %q: %v", raw, id, err)
	} else {
		ref.Tag = id
	}
	return ref, nil
}
