package bootdir_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestRepairNeverUnservesCurrent re-installs the version DIR already serves (its initramfs was
// truncated): the directory `current` points at must not be renamed or removed before
// `current` points elsewhere, so that a TFTP/HTTP client never finds the served names dangling.
// inotify records the order of what the pull does to the directories.
func TestRepairNeverUnservesCurrent(t *testing.T) {
	ref := "oci:" + t.TempDir() + ":v1"
	k, i := imagestest.PushFake(t, ref, "v1", 1<<20)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
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
	res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir})
	if err != nil {
		t.Fatalf("pull over a truncated initramfs: %v", err)
	}
	if !res.Updated {
		t.Fatal("pull over a truncated initramfs reported up to date")
	}
	testenv.AssertServes(t, dir, k, i)

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
