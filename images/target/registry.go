package target

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/ipa-oci/ipa-oci/internal/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestAccept is the Accept header for manifest requests: OCI types only, as Ironic does.
var manifestAccept = strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest}, ", ")

// registryTarget is a repository in an OCI distribution registry.
type registryTarget struct {
	repo name.Repository
	o    *options

	mu      sync.Mutex
	clients map[bool]*http.Client // by "push scope"
}

func newRegistry(repo name.Repository, o *options) *registryTarget {
	return &registryTarget{repo: repo, o: o, clients: map[bool]*http.Client{}}
}

func (r *registryTarget) String() string { return r.repo.Name() }

// client returns an authenticated HTTP client; the registry handshake runs once per scope.
func (r *registryTarget) client(ctx context.Context, push bool) (*http.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[push]; ok {
		return c, nil
	}
	auth, err := authn.Resolve(ctx, r.o.keychain, r.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", r.repo.RegistryStr(), err)
	}
	scope := r.repo.Scope(transport.PullScope)
	if push {
		scope = r.repo.Scope(transport.PushScope)
	}
	// One attempt: the operation that needs the client retries (options.retry), handshake included.
	rt, err := transport.NewWithContext(ctx, r.repo.Registry, auth, transport.NewUserAgent(r.o.transport, r.o.userAgent), []string{scope})
	if err != nil {
		return nil, content.Mark(ErrHandshake, "registry %s: %w", r.repo.RegistryStr(), err)
	}
	c := &http.Client{Transport: rt}
	r.clients[push] = c
	return c, nil
}

func (r *registryTarget) url(path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), path)
}

// statusError is an unexpected HTTP status from the registry.
type statusError struct {
	method, url string
	code        int
	body        string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.method, e.url, http.StatusText(e.code))
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

func (e *statusError) Is(target error) bool {
	return target == content.ErrNotFound && e.code == http.StatusNotFound
}

// do sends a request built by newReq under the retry policy and returns a response with one of
// the ok status codes (the caller closes the body).
func (r *registryTarget) do(ctx context.Context, what string, push bool, newReq func() (*http.Request, error), ok ...int) (*http.Response, error) {
	var resp *http.Response
	err := r.o.retry.do(ctx, what, func() error {
		var err error
		resp, err = r.doOnce(ctx, push, newReq, ok...)
		return err
	})
	return resp, err
}

// doOnce sends one request, without retrying, and checks its status against ok.
func (r *registryTarget) doOnce(ctx context.Context, push bool, newReq func() (*http.Request, error), ok ...int) (*http.Response, error) {
	c, err := r.client(ctx, push)
	if err != nil {
		return nil, err
	}
	req, err := newReq()
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return nil, r.authHint(&statusError{method: req.Method, url: req.URL.String(), code: resp.StatusCode, body: strings.TrimSpace(string(body))})
}

// authHint adds what to do to a 401/403 answer.
func (r *registryTarget) authHint(err error) error {
	var se *statusError
	var te *transport.Error
	denied := (errors.As(err, &se) && (se.code == http.StatusUnauthorized || se.code == http.StatusForbidden)) ||
		(errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden))
	if !denied {
		return err
	}
	return fmt.Errorf("%w (access denied: run `docker login %s` or add credentials for it to the docker config)", err, r.repo.RegistryStr())
}

func (r *registryTarget) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	resp, err := r.do(ctx, "resolve "+reference, false, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodHead, r.url("manifests/"+reference), nil)
		if err == nil {
			req.Header.Set("Accept", manifestAccept)
		}
		return req, err
	}, http.StatusOK)
	if errors.Is(err, content.ErrNotFound) {
		return ocispec.Descriptor{}, content.Mark(content.ErrNotFound, "%s:%s not found: check the tag, or push it first", r, reference)
	} else if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s:%s: %w", r, reference, err)
	}
	resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil || resp.ContentLength < 0 {
		// The registry did not describe the manifest on HEAD: fetch it.
		desc, _, err := r.FetchManifest(ctx, reference)
		return desc, err
	}
	return ocispec.Descriptor{MediaType: mediaTypeOf(resp.Header.Get("Content-Type")), Digest: d, Size: resp.ContentLength}, nil
}

func mediaTypeOf(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

func (r *registryTarget) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	var body []byte
	var resp *http.Response
	err := r.o.retry.do(ctx, "fetch manifest "+reference, func() error {
		var err error
		resp, err = r.doOnce(ctx, false, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, r.url("manifests/"+reference), nil)
			if err == nil {
				req.Header.Set("Accept", manifestAccept)
			}
			return req, err
		}, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, content.MaxManifestSize+1))
		return err
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s:%s: %w", r, reference, err)
	}
	if len(body) > content.MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s:%s: larger than %d bytes", r, reference, content.MaxManifestSize)
	}
	desc := ocispec.Descriptor{MediaType: mediaTypeOf(resp.Header.Get("Content-Type")), Digest: digest.FromBytes(body), Size: int64(len(body))}
	if want, err := digest.Parse(reference); err == nil && want != desc.Digest {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch manifest %s@%s: registry returned content with digest %s", r, want, desc.Digest)
	}
	return desc, body, nil
}

// FetchBlob streams desc's bytes from offset; a transfer that breaks resumes with a Range
// request under the retry policy (blobReader).
func (r *registryTarget) FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	return openBlob(ctx, r.o.retry, desc, offset, r.fetchBlobFrom)
}

// fetchBlobFrom sends one GET for desc's bytes from offset (no retry: blobReader retries).
func (r *registryTarget) fetchBlobFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	resp, err := r.doOnce(ctx, false, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, r.url("blobs/"+desc.Digest.String()), nil)
		if err == nil && offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		return req, err
	}, http.StatusOK, http.StatusPartialContent)
	if se := (*statusError)(nil); errors.As(err, &se) && se.code == http.StatusRequestedRangeNotSatisfiable && offset > 0 {
		// The registry's blob ends where the bytes received do: shorter than the descriptor says.
		return nil, fmt.Errorf("blob %s: the registry's blob ends at %d bytes, descriptor says %d: %w", desc.Digest, offset, desc.Size, content.ErrDigestMismatch)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s@%s: %w", r, desc.Digest, err)
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

// PushBlob uploads b unless the registry has it, under the retry policy: go-containerregistry's
// own retries are switched off, so that each attempt is one upload.
func (r *registryTarget) PushBlob(ctx context.Context, b content.Blob) error {
	err := r.o.retry.do(ctx, "push blob "+b.Descriptor.Digest.String(), func() error {
		c, err := r.client(ctx, true)
		if err != nil {
			return err
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(c.Transport),
			remote.WithRetryPredicate(func(error) bool { return false })}
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

// PushManifest stores m under its digest.
func (r *registryTarget) PushManifest(ctx context.Context, m content.Blob) error {
	return r.putManifest(ctx, m, m.Descriptor.Digest.String())
}

// Tag stores m under tag.
func (r *registryTarget) Tag(ctx context.Context, m content.Blob, tag string) error {
	return r.putManifest(ctx, m, tag)
}

func (r *registryTarget) putManifest(ctx context.Context, b content.Blob, ref string) error {
	resp, err := r.do(ctx, "push manifest "+ref, true, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPut, r.url("manifests/"+ref), bytes.NewReader(b.Data))
		if err == nil {
			req.Header.Set("Content-Type", b.Descriptor.MediaType)
		}
		return req, err
	}, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("push manifest %s:%s: %w", r, ref, err)
	}
	resp.Body.Close()
	var m ocispec.Manifest
	if err := json.Unmarshal(b.Data, &m); err == nil && m.Subject != nil && resp.Header.Get("OCI-Subject") == "" {
		return r.addFallbackReferrer(ctx, m, b.Descriptor)
	}
	return nil
}

// addFallbackReferrer records desc in the referrers tag schema index (tag sha256-<hex>) of the
// subject, for registries without the referrers API (CNCF Distribution).
func (r *registryTarget) addFallbackReferrer(ctx context.Context, m ocispec.Manifest, desc ocispec.Descriptor) error {
	if _, supported, err := r.referrersFromAPI(ctx, m.Subject.Digest); err != nil {
		return err
	} else if supported {
		return nil
	}
	tag := fallbackTag(m.Subject.Digest)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	_, raw, err := r.FetchManifest(ctx, tag)
	switch {
	case errors.Is(err, content.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(raw, &idx); err != nil {
			return fmt.Errorf("referrers fallback tag %s:%s: %w", r, tag, err)
		}
	}
	entry := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
		ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	for _, e := range idx.Manifests {
		if e.Digest == entry.Digest {
			return nil
		}
	}
	idx.Manifests = append(idx.Manifests, entry)
	raw, err = json.Marshal(idx)
	if err != nil {
		return err
	}
	b := content.Blob{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, Data: raw}
	r.o.log.WithField("tag", tag).Debug("updating referrers fallback tag")
	return r.putManifest(ctx, b, tag)
}

// referrersFromAPI asks the referrers API; ok is false where the registry does not serve it.
func (r *registryTarget) referrersFromAPI(ctx context.Context, d digest.Digest) (*ocispec.Index, bool, error) {
	resp, err := r.do(ctx, "referrers of "+d.String(), false, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, r.url("referrers/"+d.String()), nil)
		if err == nil {
			req.Header.Set("Accept", ocispec.MediaTypeImageIndex)
		}
		return req, err
	}, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable, http.StatusMethodNotAllowed)
	if err != nil {
		return nil, false, fmt.Errorf("referrers of %s in %s: %w", d, r, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || mediaTypeOf(resp.Header.Get("Content-Type")) != ocispec.MediaTypeImageIndex {
		return nil, false, nil
	}
	var idx ocispec.Index
	if err := json.NewDecoder(io.LimitReader(resp.Body, content.MaxManifestSize)).Decode(&idx); err != nil {
		return nil, false, fmt.Errorf("referrers of %s in %s: %w", d, r, err)
	}
	return &idx, true, nil
}

func (r *registryTarget) Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	idx, ok, err := r.referrersFromAPI(ctx, d)
	if err != nil {
		return nil, err
	}
	if ok {
		return idx.Manifests, nil
	}
	_, raw, err := r.FetchManifest(ctx, fallbackTag(d))
	if errors.Is(err, content.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var fallback ocispec.Index
	if err := json.Unmarshal(raw, &fallback); err != nil {
		return nil, fmt.Errorf("referrers fallback tag %s:%s: %w", r, fallbackTag(d), err)
	}
	return fallback.Manifests, nil
}

// fallbackTag is the referrers tag schema tag for d: sha256-<hex>.
func fallbackTag(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() }

// blobLayer adapts a Blob to go-containerregistry's v1.Layer for remote.WriteLayer.
type blobLayer struct{ b content.Blob }

func (l *blobLayer) Digest() (v1.Hash, error)             { return v1.NewHash(l.b.Descriptor.Digest.String()) }
func (l *blobLayer) DiffID() (v1.Hash, error)             { return l.Digest() }
func (l *blobLayer) Size() (int64, error)                 { return l.b.Descriptor.Size, nil }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *blobLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.b.Descriptor.MediaType), nil
}
func (l *blobLayer) Compressed() (io.ReadCloser, error) { return l.b.Open() }

// follow advances bar from go-containerregistry's progress updates until the channel closes.
func follow(bar *progress.Bar, updates <-chan v1.Update) {
	for u := range updates {
		bar.Set(u.Complete)
	}
}
