package store

import (
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fetchFrom sends one request for desc's bytes from offset, without retrying.
type fetchFrom func(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)

// blobReader reads one blob as one operation under the retry policy: a request that fails, or
// a body that breaks (a cut connection, a body that ends before the descriptor's size), is
// followed by another request for the rest, from the first byte not yet read, after the
// policy's wait. Bytes received start the count of retries afresh, so a long download through
// a flaky link is not abandoned while it advances. Bytes past the descriptor's size are passed
// on: the caller's verification refuses them.
type blobReader struct {
	ctx     context.Context
	p       policy
	desc    ocispec.Descriptor
	fetch   fetchFrom
	off     int64         // the next byte to read
	body    io.ReadCloser // the current response body; nil between requests
	failed  error         // why the last request or body failed; nil when none did
	attempt int           // retries since bytes last arrived
}

// openBlob returns a blobReader at offset, its first request sent.
func openBlob(ctx context.Context, p policy, desc ocispec.Descriptor, offset int64, fetch fetchFrom) (io.ReadCloser, error) {
	b := &blobReader{ctx: ctx, p: p, desc: desc, fetch: fetch, off: offset}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

// open sends requests until one answers, waiting before each after a failure.
func (b *blobReader) open() error {
	for {
		if b.failed != nil {
			if !b.p.again(b.ctx, b.failed, b.attempt) {
				return b.failed
			}
			if err := b.p.wait(b.ctx, "fetch blob "+b.desc.Digest.String(), b.attempt, b.failed); err != nil {
				return err
			}
			b.attempt++
		}
		body, err := b.fetch(b.ctx, b.desc, b.off)
		if err == nil {
			b.body = body
			return nil
		}
		if !retryable(err) {
			return err
		}
		b.failed = err
	}
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if n > 0 {
			b.failed, b.attempt = nil, 0
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && b.off >= b.desc.Size:
			return n, io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF // the body ended before the blob did
		}
		b.body.Close()
		b.body = nil
		if !retryable(err) || b.ctx.Err() != nil {
			return n, err
		}
		b.failed = err
		if n > 0 {
			return n, nil // hand over what came; the next Read asks for the rest
		}
	}
}

func (b *blobReader) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}
