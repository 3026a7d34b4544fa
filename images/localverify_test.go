package images_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/ipa-oci/ipa-oci/images"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"golang.org/x/sys/unix"
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
		if !after.ModTime().Equal(st.ModTime()) || after.Size() != st.Size() || inode(after) != inode(st) {
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
			ref := reg.Host + "/ipa/agent:inplace-" + itoa(int64(n))
			k, i := pushFake(t, ref, "v1", 1<<20)
			dir := t.TempDir()
			ctx := context.Background()
			if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, servedInitramfs), 4321, c.keepMtime)
			res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir})
			if err != nil {
				t.Fatalf("pull over a modified file: %v", err)
			}
			assertServes(t, dir, k, i)
			if !res.Updated || len(res.Repaired) != 1 || !strings.HasPrefix(res.Repaired[0], servedInitramfs+": digest ") {
				t.Errorf("pull over a modified initramfs: updated=%v repaired=%q, want it reported as repaired", res.Updated, res.Repaired)
			}
			// Repaired means verified: the next pull is up to date again, and DIR passes verify.
			if res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil || res.Updated {
				t.Errorf("pull after the repair: updated=%v, %v; want up to date", res != nil && res.Updated, err)
			}
			if bad, err := images.Verify(ctx, dir, ref); err != nil || len(bad) != 0 {
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
			ref := reg.Host + "/ipa/agent:reuse-" + itoa(int64(n))
			src := t.TempDir()
			k1, i := fakeKernel(t, src, 64<<10), fakeInitramfs(t, src, 1<<20)
			ctx := context.Background()
			if _, err := images.Push(ctx, ref, images.PushRequest{Kernel: k1, Initramfs: i, IPAVersion: "v1"}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, servedInitramfs), 77777, c.keepMtime)
			k2 := fakeKernel(t, t.TempDir(), 64<<10)
			if _, err := images.Push(ctx, ref, images.PushRequest{Kernel: k2, Initramfs: i, IPAVersion: "v2"}); err != nil {
				t.Fatal(err)
			}
			res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir})
			if err != nil {
				t.Fatalf("pull of v2: %v", err)
			}
			if !res.Updated || res.Record.IPAVersion != "v2" {
				t.Fatalf("pull of v2: updated=%v version %q", res.Updated, res.Record.IPAVersion)
			}
			assertServes(t, dir, k2, i)
			sums := mustRead(t, filepath.Join(dir, "SHA256SUMS"))
			d, _, _ := fileSHA(i)
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
	k, i := pushFake(t, ref, "v1", 1<<20)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(dir, servedInitramfs)
	flipByte(t, served, 99, false)
	forgeStamps(t, dir)
	if res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil || res.Updated {
		t.Fatalf("pull with forged stamps: updated=%v, %v; want up to date (stat cannot see it)", res != nil && res.Updated, err)
	}
	res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir, VerifyLocal: true})
	if err != nil {
		t.Fatalf("pull --verify-local: %v", err)
	}
	if !res.Updated || len(res.Repaired) != 1 {
		t.Errorf("pull --verify-local: updated=%v repaired=%q, want the initramfs repaired", res.Updated, res.Repaired)
	}
	assertServes(t, dir, k, i)
	if res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir, VerifyLocal: true}); err != nil || res.Updated {
		t.Errorf("second pull --verify-local: updated=%v, %v; want up to date", res != nil && res.Updated, err)
	}
}

// forgeStamps rewrites DIR/.ipa-oci/stamps.json so that every stamp matches its file's stat(2)
// as it is now, as someone hiding a modification would.
func forgeStamps(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, ".ipa-oci", "stamps.json")
	var s map[string]map[string]any
	if err := json.Unmarshal(mustRead(t, p), &s); err != nil || len(s) == 0 {
		t.Fatalf("stamps.json: %v (%d entries)", err, len(s))
	}
	for rel, st := range s {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		sys := statT(fi)
		st["size"], st["ino"] = fi.Size(), sys.Ino
		st["mtime_ns"] = fi.ModTime().UnixNano()
		st["ctime_ns"] = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
	}
	b, _ := json.Marshal(s)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRepairNeverUnservesCurrent re-installs the version DIR already serves (its initramfs was
// truncated): the directory `current` points at must not be renamed or removed before
// `current` points elsewhere, so that a TFTP/HTTP client never finds the served names dangling.
// inotify records the order of what the pull does to the directories.
func TestRepairNeverUnservesCurrent(t *testing.T) {
	ref := "oci:" + t.TempDir() + ":v1"
	k, i := pushFake(t, ref, "v1", 1<<20)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	archDir := filepath.Join(dir, ".ipa-oci", "amd64")
	cur, err := os.Readlink(filepath.Join(archDir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(dir, servedInitramfs)
	st, _ := os.Stat(served)
	if err := os.Truncate(served, st.Size()-1); err != nil {
		t.Fatal(err)
	}

	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	mask := uint32(unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_CREATE)
	wdArch, err := unix.InotifyAddWatch(fd, archDir, mask)
	if err != nil {
		t.Fatal(err)
	}
	wdVersions, err := unix.InotifyAddWatch(fd, filepath.Join(archDir, "versions"), mask)
	if err != nil {
		t.Fatal(err)
	}
	res, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir})
	if err != nil {
		t.Fatalf("pull over a truncated initramfs: %v", err)
	}
	if !res.Updated {
		t.Fatal("pull over a truncated initramfs reported up to date")
	}
	assertServes(t, dir, k, i)

	var log []string
	switched := false
	for _, ev := range readInotify(t, fd) {
		log = append(log, fmt.Sprintf("%s %s %#x", map[int32]string{int32(wdArch): "amd64/", int32(wdVersions): "versions/"}[ev.wd], ev.name, ev.mask))
		switch {
		case ev.wd == int32(wdArch) && ev.name == "current" && ev.mask&unix.IN_MOVED_TO != 0:
			now, _ := os.Readlink(filepath.Join(archDir, "current"))
			if now != cur {
				switched = true
			}
		case ev.wd == int32(wdVersions) && ev.name == filepath.Base(cur) && ev.mask&(unix.IN_MOVED_FROM|unix.IN_DELETE) != 0 && !switched:
			t.Fatalf("the served version %s was moved or removed while current pointed at it; events:\n%s", cur, strings.Join(log, "\n"))
		}
	}
	if !switched {
		t.Fatalf("current never moved off the damaged %s; events:\n%s", cur, strings.Join(log, "\n"))
	}
	t.Logf("events:\n%s", strings.Join(log, "\n"))
}

type inotifyEvent struct {
	wd   int32
	mask uint32
	name string
}

// readInotify drains the events queued on a non-blocking inotify descriptor.
func readInotify(t *testing.T, fd int) []inotifyEvent {
	t.Helper()
	var out []inotifyEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(raw.Len)], "\x00"))
			if raw.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflowed")
			}
			out = append(out, inotifyEvent{raw.Wd, raw.Mask, name})
			off += unix.SizeofInotifyEvent + int(raw.Len)
		}
	}
}

// TestRollbackRefusesDamagedPrevious: rollback switches to the previous version only after
// checking its files; one modified in place (mtime reset) makes it refuse and leave the
// current version served.
func TestRollbackRefusesDamagedPrevious(t *testing.T) {
	ref := "oci:" + t.TempDir() + ":v"
	ctx := context.Background()
	dir := t.TempDir()
	pushFake(t, ref, "v1", 1<<20)
	if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	k2, i2 := pushFake(t, ref, "v2", 1<<20)
	if _, err := images.Pull(ctx, ref, images.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	prev, err := os.Readlink(filepath.Join(dir, ".ipa-oci", "amd64", "previous"))
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(dir, ".ipa-oci", "amd64", prev, servedInitramfs), 1000, true)
	_, err = images.Rollback(ctx, dir, "")
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), servedInitramfs) {
		t.Fatalf("rollback to a damaged version: err = %v, want it refused naming the file", err)
	}
	assertServes(t, dir, k2, i2)
}
