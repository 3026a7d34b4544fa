package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

type bytesBuffer = bytes.Buffer

// copyBufferSize is the chunk size of blob copies. io.Copy's 32 KiB means one read, one write
// and one hash call per 32 KiB; 1 MiB chunks cut a 250 MB pull's wall time by about a fifth.
const copyBufferSize = 1 << 20

// copyCtx is io.Copy with 1 MiB chunks that stops when ctx is cancelled.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(dst, ctxReader{ctx, src}, make([]byte, copyBufferSize))
}

// ErrDigestMismatch is returned (wrapped) when content does not match its descriptor.
var ErrDigestMismatch = errors.New("digest mismatch")

// verifyingWriter hashes and counts what passes through and refuses bytes past the expected size.
type verifyingWriter struct {
	w    io.Writer
	h    hasher
	n    int64
	desc ocispec.Descriptor
}

func newVerifyingWriter(w io.Writer, desc ocispec.Descriptor) *verifyingWriter {
	return &verifyingWriter{w: w, h: sha256.New(), desc: desc}
}

func (v *verifyingWriter) Write(p []byte) (int, error) {
	if v.n+int64(len(p)) > v.desc.Size {
		return 0, fmt.Errorf("blob %s is larger than its descriptor's %d bytes: %w", v.desc.Digest, v.desc.Size, ErrDigestMismatch)
	}
	n, err := v.w.Write(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	return n, err
}

// hasher is what verifyingWriter hashes with: a hash.Hash, or an asyncHasher.
type hasher interface {
	io.Writer
	Sum(b []byte) []byte
}

// asyncHasher hashes on its own goroutine so that SHA-256 overlaps network and disk I/O on
// another core (a 250 MB pull is otherwise CPU-bound on one). Write copies into one of a few
// pooled buffers, so memory stays flat whatever the blob size.
type asyncHasher struct {
	h        hash.Hash
	work     chan []byte
	free     chan []byte
	done     chan struct{}
	stopOnce sync.Once
}

const asyncHashBuffers = 4

func newAsyncHasher(h hash.Hash) *asyncHasher {
	a := &asyncHasher{h: h, work: make(chan []byte, asyncHashBuffers), free: make(chan []byte, asyncHashBuffers), done: make(chan struct{})}
	for range asyncHashBuffers {
		a.free <- make([]byte, 0, copyBufferSize)
	}
	go func() {
		defer close(a.done)
		for b := range a.work {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *asyncHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		b := <-a.free
		k := min(len(p), cap(b))
		a.work <- append(b, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// Sum waits for everything written to be hashed. No Write may follow.
func (a *asyncHasher) Sum(b []byte) []byte {
	a.stop()
	return a.h.Sum(b)
}

// stop ends the hashing goroutine once all queued bytes are hashed; safe to call repeatedly.
func (a *asyncHasher) stop() {
	a.stopOnce.Do(func() { close(a.work) })
	<-a.done
}

// check verifies size and digest once all bytes are written.
func (v *verifyingWriter) check() error {
	if v.n != v.desc.Size {
		return fmt.Errorf("blob %s: got %d bytes, descriptor says %d: %w", v.desc.Digest, v.n, v.desc.Size, ErrDigestMismatch)
	}
	if v.desc.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("blob %s: only sha256 digests are supported", v.desc.Digest)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, v.h.Sum(nil)); got != v.desc.Digest {
		return fmt.Errorf("blob %s: content has digest %s (tampered or corrupted in transit): %w", v.desc.Digest, got, ErrDigestMismatch)
	}
	return nil
}

// writeVerified streams src into dst through a temporary file in dst's directory, checks size
// and digest at EOF, fsyncs and renames: nothing half-written is ever visible under dst.
func writeVerified(ctx context.Context, dst string, src io.Reader, desc ocispec.Descriptor, progress io.Writer) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	vw := newVerifyingWriter(tmp, desc)
	var w io.Writer = vw
	if progress != nil {
		w = io.MultiWriter(vw, progress)
	}
	if _, err := copyCtx(ctx, w, src); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := vw.check(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return syncDir(filepath.Dir(dst))
}

// writeFileAtomic writes data to path through a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	return writeVerified(context.Background(), path, bytes.NewReader(data), desc, nil)
}

// syncDir fsyncs a directory so that renames in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fileDigest returns the sha256 digest and size of a file.
func fileDigest(path string) (digest.Digest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)), n, nil
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

func descriptorOf(d digest.Digest, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: d, Size: size}
}

func joinDir(dir, name string) string { return filepath.Join(dir, name) }

// readSHA256SUMS parses a sha256sum-format file into name -> digest.
func readSHA256SUMS(path string) (map[string]digest.Digest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		hex, name, ok := strings.Cut(line, "  ")
		if !ok {
			return nil, fmt.Errorf("bad line %q", line)
		}
		out[name] = digest.NewDigestFromEncoded(digest.SHA256, hex)
	}
	return out, nil
}
