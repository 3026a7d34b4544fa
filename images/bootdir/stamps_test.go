package bootdir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

const servedInitramfs = "ironic-python-agent.initramfs"

// flipByte inverts one byte of the file at path in place (same inode, same size); with
// keepMtime it then sets mtime back to what it was, so that only ctime betrays the write.
func flipByte(t *testing.T, path string, off int64, keepMtime bool) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if keepMtime {
		if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(path)
		if !after.ModTime().Equal(st.ModTime()) || after.Size() != st.Size() || testenv.Inode(after) != testenv.Inode(st) {
			t.Fatalf("the flip changed more than the content and ctime of %s", path)
		}
	}
}

// modificationCases are the two ways a served file is altered in place.
var modificationCases = []struct {
	name      string
	keepMtime bool
}{{"mtime changed", false}, {"mtime reset, only ctime changed", true}}

// TestPullRepairsFileModifiedInPlace flips a byte of the served initramfs and pulls the same tag
// again: the pull must not report "up to date" over the bad byte; it downloads the file again.
func TestPullRepairsFileModifiedInPlace(t *testing.T) {
	reg := testenv.StartRegistry(t)
	for n, c := range modificationCases {
		t.Run(c.name, func(t *testing.T) {
			ref := reg.Host + "/ipa/agent:inplace-" + strconv.Itoa(n)
			k, i := imagestest.PushFake(t, ref, "v1", 1<<20)
			dir := t.TempDir()
			ctx := context.Background()
			if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, servedInitramfs), 4321, c.keepMtime)
			res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir})
			if err != nil {
				t.Fatalf("pull over a modified file: %v", err)
			}
			testenv.AssertServes(t, dir, k, i)
			if !res.Updated || len(res.Repaired) != 1 || !strings.HasPrefix(res.Repaired[0], servedInitramfs+": digest ") {
				t.Errorf("pull over a modified initramfs: updated=%v repaired=%q, want it reported as repaired", res.Updated, res.Repaired)
			}
			// Repaired means verified: the next pull is up to date again, and DIR passes verify.
			if res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil || res.Updated {
				t.Errorf("pull after the repair: updated=%v, %v; want up to date", res != nil && res.Updated, err)
			}
			if bad, err := imagestest.Verify(ctx, dir, ref); err != nil || len(bad) != 0 {
				t.Errorf("verify after the repair: %v %v", bad, err)
			}
		})
	}
}

// TestPullDoesNotReuseModifiedFile flips a byte of the served initramfs, then pulls a new
// version whose index has the same initramfs blob: the modified file must not be linked into
// the new version; the pull downloads the initramfs.
func TestPullDoesNotReuseModifiedFile(t *testing.T) {
	reg := testenv.StartRegistry(t)
	for n, c := range modificationCases {
		t.Run(c.name, func(t *testing.T) {
			ref := reg.Host + "/ipa/agent:reuse-" + strconv.Itoa(n)
			src := t.TempDir()
			k1, i := testenv.FakeKernel(t, src, 64<<10), testenv.FakeInitramfs(t, src, 1<<20)
			ctx := context.Background()
			if _, err := imagestest.Push(ctx, ref, artifact.PushRequest{Kernel: k1, Initramfs: i, IPAVersion: "v1"}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, servedInitramfs), 77777, c.keepMtime)
			k2 := testenv.FakeKernel(t, t.TempDir(), 64<<10)
			if _, err := imagestest.Push(ctx, ref, artifact.PushRequest{Kernel: k2, Initramfs: i, IPAVersion: "v2"}); err != nil {
				t.Fatal(err)
			}
			res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir})
			if err != nil {
				t.Fatalf("pull of v2: %v", err)
			}
			if !res.Updated || res.Record.IPAVersion != "v2" {
				t.Fatalf("pull of v2: updated=%v version %q", res.Updated, res.Record.IPAVersion)
			}
			testenv.AssertServes(t, dir, k2, i)
			sums := testenv.MustRead(t, filepath.Join(dir, "SHA256SUMS"))
			d, _, _ := content.FileDigest(context.Background(), i)
			if !bytes.Contains(sums, []byte(d.Encoded()+"  "+servedInitramfs)) {
				t.Errorf("SHA256SUMS does not list the initramfs digest:\n%s", sums)
			}
		})
	}
}

// TestPullVerifyLocal: a modification that stat(2) cannot see (here: the stamps file forged to
// match the modified file) passes the cheap up-to-date check, as documented; --verify-local
// hashes every file and repairs it.
func TestPullVerifyLocal(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Host + "/ipa/agent:verify-local"
	k, i := imagestest.PushFake(t, ref, "v1", 1<<20)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(dir, servedInitramfs)
	flipByte(t, served, 99, false)
	forgeStamps(t, dir)
	if res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil || res.Updated {
		t.Fatalf("pull with forged stamps: updated=%v, %v; want up to date (stat cannot see it)", res != nil && res.Updated, err)
	}
	res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir, VerifyLocal: true})
	if err != nil {
		t.Fatalf("pull --verify-local: %v", err)
	}
	if !res.Updated || len(res.Repaired) != 1 {
		t.Errorf("pull --verify-local: updated=%v repaired=%q, want the initramfs repaired", res.Updated, res.Repaired)
	}
	testenv.AssertServes(t, dir, k, i)
	if res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir, VerifyLocal: true}); err != nil || res.Updated {
		t.Errorf("second pull --verify-local: updated=%v, %v; want up to date", res != nil && res.Updated, err)
	}
}

// forgeStamps rewrites DIR/.ipa-oci/stamps.json so that every stamp matches its file's stat(2)
// as it is now, as someone hiding a modification would.
func forgeStamps(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, ".ipa-oci", "stamps.json")
	var s map[string]map[string]any
	if err := json.Unmarshal(testenv.MustRead(t, p), &s); err != nil || len(s) == 0 {
		t.Fatalf("stamps.json: %v (%d entries)", err, len(s))
	}
	for rel, st := range s {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		st["size"], st["ino"] = fi.Size(), sys.Ino
		st["mtime_ns"] = fi.ModTime().UnixNano()
		st["ctime_ns"] = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
	}
	b, _ := json.Marshal(s)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
