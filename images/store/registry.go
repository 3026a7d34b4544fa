package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// registryTarget is a repository in an OCI distribution registry, reached through
// go-containerregistry's remote package: manifests by remote.Head, Get and Put (raw bytes and
// media type, so artifactType and the empty config stay as packed; Put keeps the referrers
// fallback tag of a manifest with a subject), blobs by remote.WriteLayer, referrers by
// remote.Referrers (the API, or the sha256-<hex> fallback tag). Each call gets one
// authenticated transport (transport.Wrapper), which go-containerregistry wraps in nothing:
// no retries of its own, no second handshake; retry.go retries every operation once.
type registryTarget struct {
	repo name.Repository
	o    *options

	mu         sync.Mutex
	transports map[bool]http.RoundTripper // authenticated, by push scope
}

func newRegistry(repo name.Repository, o *options) *registryTarget {
	return &registryTarget{repo: repo, o: o, transports: map[bool]http.RoundTripper{}}
}

func (r *registryTarget) String() string { return r.repo.Name() }

// transport returns the authenticated transport for pulling or pushing: the registry handshake
// (ping, token) runs once per scope, as one attempt of the operation that needs it.
func (r *registryTarget) transport(ctx context.Context, push bool) (http.RoundTripper, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.transports[push]; ok {
		return t, nil
	}
	auth, err := authn.Resolve(ctx, r.o.keychain, r.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", r.repo.RegistryStr(), err)
	}
	scope := r.repo.Scope(transport.PullScope)
	if push {
		scope = r.repo.Scope(transport.PushScope)
	}
	t, err := transport.NewWithContext(ctx, r.repo.Registry, auth, transport.NewUserAgent(r.o.transport, r.o.userAgent), []string{scope})
	if err != nil {
		return nil, errkind.Mark(ErrHandshake, "registry %s: %w", r.repo.RegistryStr(), err)
	}
	r.transports[push] = t
	return t, nil
}

// remote returns the options of one go-containerregistry call: its context, the authenticated
// transport, and the library's own retries off (retry.go retries the whole call).
func (r *registryTarget) remote(ctx context.Context, push bool) ([]remote.Option, error) {
	t, err := r.transport(ctx, push)
	if err != nil {
		return nil, err
	}
	return append([]remote.Option{remote.WithContext(ctx), remote.WithTransport(t)}, libraryRetryOff()...), nil
}

// ref is reference (a tag or a digest) in this repository.
func (r *registryTarget) ref(reference string) name.Reference {
	if _, err := digest.Parse(reference); err == nil {
		return r.repo.Digest(reference)
	}
	return r.repo.Tag(reference)
}

func (r *registryTarget) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	var d *v1.Descriptor
	err := r.o.retry.do(ctx, "resolve "+reference, func() error {
		opts, err := r.remote(ctx, false)
		if err == nil {
			d, err = remote.Head(r.ref(reference), opts...)
		}
		return err
	})
	switch {
	case err == nil:
		return ocispec.Descriptor{MediaType: mediaTypeOf(string(d.MediaType)), Digest: digest.Digest(d.Digest.String()), Size: d.Size}, nil
	case isNotFound(err):
		return ocispec.Descriptor{}, errkind.Mark(content.ErrNotFound, "%s:%s not found: check the tag, or push it first", r, reference)
	case strings.Contains(err.Error(), "response did not include"):
		// The registry answered HEAD without describing the manifest (no type, length or
		// digest; go-containerregistry has no typed error for it): fetch it.
		desc, _, err := r.FetchManifest(ctx, reference)
		return desc, err
	}
	return ocispec.Descriptor{}, fmt.Errorf("resolve %s:%s: %w", r, reference, r.authHint(err))
}

func (r *registryTarget) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	var m *remote.Descriptor
	err := r.o.retry.do(ctx, "fetch manifest "+reference, func() error {
		opts, err := r.remote(ctx, false)
		if err == nil {
			m, err = remote.Get(r.ref(reference), opts...) // verifies the bytes of a digest reference
		}
		return err
	})
	if isNotFound(err) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s:%s: %w", r, reference, content.ErrNotFound)
	} else if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s:%s: %w", r, reference, r.authHint(err))
	}
	if len(m.Manifest) > content.MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s:%s: larger than %d bytes", r, reference, content.MaxManifestSize)
	}
	desc := ocispec.Descriptor{MediaType: mediaTypeOf(string(m.MediaType)), Digest: digest.FromBytes(m.Manifest), Size: int64(len(m.Manifest))}
	return desc, m.Manifest, nil
}

// PushBlob uploads b unless the registry has it (remote.WriteLayer asks first).
func (r *registryTarget) PushBlob(ctx context.Context, b content.Blob) error {
	err := r.o.retry.do(ctx, "push blob "+b.Descriptor.Digest.String(), func() error {
		opts, err := r.remote(ctx, true)
		if err != nil {
			return err
		}
		var bar *progress.Bar
		if b.Data == nil {
			bar = progress.New(r.o.progress, b.Descriptor.Size, "push", b.Descriptor.Digest)
		}
		if bar != nil {
			updates := make(chan v1.Update, 16)
			go follow(bar, updates)
			opts = append(opts, remote.WithProgress(updates))
		}
		err = remote.WriteLayer(r.repo, &blobLayer{b: b}, opts...)
		bar.Finish()
		return err
	})
	if err != nil {
		return fmt.Errorf("push blob %s to %s: %w", b.Descriptor.Digest, r, r.authHint(err))
	}
	return nil
}

// PushManifest stores m under its digest; remote.Put records a manifest with a subject in the
// referrers fallback tag where the registry has no referrers API.
func (r *registryTarget) PushManifest(ctx context.Context, m content.Blob) error {
	return r.put(ctx, m, m.Descriptor.Digest.String())
}

// Tag stores m under tag.
func (r *registryTarget) Tag(ctx context.Context, m content.Blob, tag string) error {
	return r.put(ctx, m, tag)
}

func (r *registryTarget) put(ctx context.Context, m content.Blob, reference string) error {
	err := r.o.retry.do(ctx, "push manifest "+reference, func() error {
		opts, err := r.remote(ctx, true)
		if err == nil {
			err = remote.Put(r.ref(reference), rawManifest{m}, opts...)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("push manifest %s:%s: %w", r, reference, r.authHint(err))
	}
	return nil
}

// Referrers lists the manifests whose subject is d: the referrers API, or the fallback tag.
func (r *registryTarget) Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	var idx *v1.IndexManifest
	err := r.o.retry.do(ctx, "referrers of "+d.String(), func() error {
		opts, err := r.remote(ctx, false)
		if err != nil {
			return err
		}
		ii, err := remote.Referrers(r.repo.Digest(d.String()), opts...)
		if err == nil {
			idx, err = ii.IndexManifest()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", d, r, r.authHint(err))
	}
	var out []ocispec.Descriptor
	for _, m := range idx.Manifests {
		out = append(out, ocispec.Descriptor{MediaType: string(m.MediaType), Digest: digest.Digest(m.Digest.String()), Size: m.Size,
			ArtifactType: m.ArtifactType, Annotations: m.Annotations})
	}
	return out, nil
}

// FetchBlob streams desc's bytes from offset; a transfer that breaks resumes under the retry
// policy (blobReader).
func (r *registryTarget) FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	return openBlob(ctx, r.o.retry, desc, offset, r.fetchBlobFrom)
}

// fetchBlobFrom sends one GET for desc's bytes from offset. This request is hand-written:
// go-containerregistry reads a blob only from its first byte (remote.Layer has no Range
// request), and a pull resumes an interrupted download where it stopped. It goes through the
// same authenticated transport as the library's calls.
func (r *registryTarget) fetchBlobFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	t, err := r.transport(ctx, false)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), desc.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s@%s: %w", r, desc.Digest, err)
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0 {
		resp.Body.Close()
		// The registry's blob ends where the bytes received do: shorter than the descriptor says.
		return nil, fmt.Errorf("blob %s: the registry's blob ends at %d bytes, descriptor says %d: %w", desc.Digest, offset, desc.Size, content.ErrDigestMismatch)
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch blob %s@%s: %w", r, desc.Digest, r.authHint(err))
	}
	if offset > 0 && resp.StatusCode == http.StatusOK {
		// The registry ignored Range: skip what we already have.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("fetch blob %s@%s: skip to %d: %w", r, desc.Digest, offset, err)
		}
	}
	return resp.Body, nil
}

// isNotFound reports whether the registry answered 404.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// authHint adds what to do to a 401/403 answer.
func (r *registryTarget) authHint(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) {
		return err
	}
	return fmt.Errorf("%w (access denied: run `docker login %s` or add credentials for it to the docker config)", err, r.repo.RegistryStr())
}

func mediaTypeOf(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// rawManifest hands a manifest's bytes and media type to remote.Put unchanged.
type rawManifest struct{ m content.Blob }

func (m rawManifest) RawManifest() ([]byte, error) { return m.m.Data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) {
	return types.MediaType(m.m.Descriptor.MediaType), nil
}

// blobLayer adapts a Blob to go-containerregistry's v1.Layer for remote.WriteLayer.
type blobLayer struct{ b content.Blob }

func (l *blobLayer) Digest() (v1.Hash, error)             { return v1.NewHash(l.b.Descriptor.Digest.String()) }
func (l *blobLayer) DiffID() (v1.Hash, error)             { return l.Digest() }
func (l *blobLayer) Size() (int64, error)                 { return l.b.Descriptor.Size, nil }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *blobLayer) Compressed() (io.ReadCloser, error)   { return l.b.Open() }
func (l *blobLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.b.Descriptor.MediaType), nil
}

// follow advances bar from go-containerregistry's progress updates until the channel closes.
func follow(bar *progress.Bar, updates <-chan v1.Update) {
	for u := range updates {
		bar.Set(u.Complete)
	}
}
