package bootdir

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// stallTarget is a content.BlobFetcher (all fetchFiles needs) that serves one blob whose body blocks in Read until the request's context ends, and
// then still returns a chunk of data: a read already under way when the pull gives up.
type stallTarget struct {
	data     []byte
	returned chan struct{} // closed once the stalled Read has returned its data
}

func (s *stallTarget) FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	return &stallBody{ctx: ctx, t: s, data: s.data[offset:]}, nil
}

type stallBody struct {
	ctx  context.Context
	t    *stallTarget
	data []byte
	done bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	<-b.ctx.Done()
	b.done = true
	defer close(b.t.returned)
	return copy(p, b.data[:len(b.data)/2]), nil
}

func (b *stallBody) Close() error { return nil }

// TestFetchFilesStopsTransfersBeforeReturning: the kernel downloads (its read stalls), while
// placing the initramfs (from a local copy) fails. fetchFiles must return that failure only
// after the kernel's transfer has stopped: nothing is written to DIR after it returns.
func TestFetchFilesStopsTransfersBeforeReturning(t *testing.T) {
	dest := t.TempDir()
	d, err := openDestDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	kernel := make([]byte, 4<<20)
	initramfs := make([]byte, 32<<20) // copying it takes long enough for the kernel's read to start
	rand.Read(kernel)
	rand.Read(initramfs)
	kd, id := digest.FromBytes(kernel), digest.FromBytes(initramfs)

	// A local copy of the initramfs, in a version DIR already holds.
	old := d.state("amd64", "versions", "0123456789abcdef")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "ironic-python-agent.initramfs"), initramfs, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &Record{Arch: "amd64", IndexDigest: digest.FromString("old"), Files: []RecordFile{
		{Name: "ironic-python-agent.initramfs", Component: "initramfs", Digest: id, Size: int64(len(initramfs))}}}
	if err := writeRecord(filepath.Join(old, "record.json"), rec); err != nil {
		t.Fatal(err)
	}
	// The new version's directory, where the initramfs cannot be placed: a directory is in the way.
	tmp := filepath.Join(t.TempDir(), "new")
	if err := os.MkdirAll(filepath.Join(tmp, "ironic-python-agent.initramfs", "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := &stallTarget{data: kernel, returned: make(chan struct{})}
	a := &artifact.Artifact{Arch: "amd64", Files: []artifact.File{
		{Component: artifact.Kernel, Name: "ironic-python-agent.kernel", Layer: ocispec.Descriptor{Digest: kd, Size: int64(len(kernel))}},
		{Component: artifact.Initramfs, Name: "ironic-python-agent.initramfs", Layer: ocispec.Descriptor{Digest: id, Size: int64(len(initramfs))}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = d.fetchFiles(ctx, makeOptions(), target, a, tmp)
	if err == nil {
		t.Fatal("fetchFiles placed an initramfs where a directory is in the way")
	}
	part := d.state("partial", kd.Encoded()+".part")
	size := func() int64 {
		st, err := os.Stat(part)
		if err != nil {
			return -1
		}
		return st.Size()
	}
	atReturn := size()
	select {
	case <-target.returned:
	case <-time.After(10 * time.Second):
		t.Log("the kernel's transfer was cancelled before its first read: nothing to outlive fetchFiles")
	}
	// If the transfer still runs, it writes the chunk its read returned right away; give it
	// time to show (this waits for an event that must not happen; nothing is timed).
	for range 50 {
		if s := size(); s != atReturn {
			t.Fatalf("%s grew from %d to %d bytes after fetchFiles returned (%v): a transfer outlived it", part, atReturn, s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("ironic-python-agent.initramfs")) || errors.Is(err, context.Canceled) {
		t.Errorf("fetchFiles error %q: want the initramfs's failure, not the cancellation it caused", err)
	}
}
