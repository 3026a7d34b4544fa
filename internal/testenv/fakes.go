package testenv

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// FakeKernel writes n random bytes carrying the x86 boot protocol magic "HdrS" at 0x202 to
// dir/bzImage and returns its path.
func FakeKernel(t testing.TB, dir string, n int) string {
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

// FakeInitramfs writes a gzip stream of a cpio-headed random payload of about n bytes to
// dir/rootfs.cpio.gz and returns its path.
func FakeInitramfs(t testing.TB, dir string, n int) string {
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

// MustRead returns the content of the file at p.
func MustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AssertServes checks that the pull destination dir serves exactly the bytes of the files
// kernel and initramfs under the amd64 names.
func AssertServes(t testing.TB, dir, kernel, initramfs string) {
	t.Helper()
	for name, want := range map[string]string{"ironic-python-agent.kernel": kernel, "ironic-python-agent.initramfs": initramfs} {
		if got := MustRead(t, filepath.Join(dir, name)); !bytes.Equal(got, MustRead(t, want)) {
			t.Fatalf("%s in %s: %d bytes, not the expected %s", name, dir, len(got), want)
		}
	}
}

// Inode returns fi's inode number (0 where the system has none).
func Inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
