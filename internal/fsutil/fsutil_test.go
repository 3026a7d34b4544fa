package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// atomicHelperEnv makes the test binary write one file with WriteFileAtomic and exit (see
// TestMain), so TestWriteFileAtomicFsyncs can trace exactly that.
const atomicHelperEnv = "IPA_OCI_TEST_WRITE_FILE_ATOMIC"

func TestMain(m *testing.M) {
	if p := os.Getenv(atomicHelperEnv); p != "" {
		if err := WriteFileAtomic(p, []byte("{}\n")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestWriteFileAtomicFsyncs traces the system calls of WriteFileAtomic (strace): the temporary
// file is fsynced before it is renamed to its final name, and the directory after the rename.
func TestWriteFileAtomicFsyncs(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatalf("strace not found (scripts/setup-test-env.sh installs it): %v", err)
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "build-info.json")
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o", trace,
		os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), atomicHelperEnv+"="+target)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "{}\n" {
		t.Fatalf("the helper wrote %q, %v", b, err)
	}
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	fsyncTmp, rename, fsyncDir := -1, -1, -1
	for i, l := range lines {
		switch {
		case strings.Contains(l, "fsync(") && strings.Contains(l, "<"+dir+"/.build-info.json."):
			fsyncTmp = i
		case strings.Contains(l, "rename") && strings.Contains(l, "\""+target+"\""):
			rename = i
		case strings.Contains(l, "fsync(") && strings.Contains(l, "<"+dir+">"):
			fsyncDir = i
		}
	}
	if fsyncTmp < 0 || rename < 0 || fsyncDir < 0 || !(fsyncTmp < rename && rename < fsyncDir) {
		t.Errorf("want fsync(temp file) < rename(temp, %s) < fsync(dir); got lines %d %d %d of:\n%s", target, fsyncTmp, rename, fsyncDir, strings.Join(lines, "\n"))
	}
}

// TestWriteAtomicFailureLeavesOldFile: when fill fails half-way, the previous file is intact,
// fill's error comes back unchanged and no temporary file is left in the directory.
func TestWriteAtomicFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "SHA256SUMS")
	if err := WriteFileAtomic(dst, []byte("old\n")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("source went away")
	err := WriteAtomic(dst, func(w io.Writer) error {
		if _, err := io.WriteString(w, "half of the new"); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("err = %v, want fill's own error", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old\n" {
		t.Fatalf("%s holds %q after a failed write", dst, b)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("left in %s: %v", dir, left)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Fatalf("%s has mode %v, want 0644", dst, fi.Mode().Perm())
	}
}

// TestCopyFileAtomicAndSHA256File: a copy has the source's bytes (and mode 0644, whatever the
// source's), its sha256 is the known one, and a missing source leaves no destination.
func TestCopyFileAtomicAndSHA256File(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("abc"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := CopyFileAtomic(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("copy: %v, %v", fi, err)
	}
	sum, err := SHA256File(dst)
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || sum != want {
		t.Fatalf("SHA256File = %s, %v; want %s", sum, err, want)
	}
	if err := CopyFileAtomic(filepath.Join(dir, "missing"), filepath.Join(dir, "out")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("copy of a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed copy left its destination: %v", err)
	}
	if _, err := SHA256File(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SHA256File of a missing file: %v", err)
	}
}
