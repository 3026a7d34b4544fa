package images_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/ipa-oci/ipa-oci/images"
)

// fakeKernel writes n random bytes carrying the x86 boot protocol magic "HdrS" at 0x202.
func fakeKernel(t testing.TB, dir string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	copy(b[0x202:], "HdrS")
	p := filepath.Join(dir, "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeInitramfs writes a gzip stream of a cpio-headed random payload of about n bytes.
func fakeInitramfs(t testing.TB, dir string, n int) string {
	t.Helper()
	payload := make([]byte, n)
	rand.Read(payload)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	zw.Write([]byte("070701"))
	zw.Write(payload)
	zw.Close()
	p := filepath.Join(dir, "rootfs.cpio.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pushFake pushes a fresh random kernel+initramfs to ref and returns the file paths.
func pushFake(t testing.TB, ref, version string, initramfsSize int, opts ...images.Option) (kernel, initramfs string) {
	t.Helper()
	dir := t.TempDir()
	kernel, initramfs = fakeKernel(t, dir, 64<<10), fakeInitramfs(t, dir, initramfsSize)
	_, err := images.Push(context.Background(), ref, images.PushRequest{Kernel: kernel, Initramfs: initramfs, IPAVersion: version}, opts...)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return kernel, initramfs
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertServes checks that DIR serves exactly the given kernel and initramfs bytes.
func assertServes(t testing.TB, dir, kernel, initramfs string) {
	t.Helper()
	for name, want := range map[string]string{"ironic-python-agent.kernel": kernel, "ironic-python-agent.initramfs": initramfs} {
		if got := mustRead(t, filepath.Join(dir, name)); !bytes.Equal(got, mustRead(t, want)) {
			t.Fatalf("%s in %s: %d bytes, not the expected %s", name, dir, len(got), want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func statT(fi os.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st
}
