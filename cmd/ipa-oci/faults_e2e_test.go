package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestE2EFullDisk pulls a 4 MiB initramfs into a 1 MiB tmpfs that serves a small version:
// the pull fails saying the disk is full, and the small version is still served.
func TestE2EFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("full-disk test needs root to mount a 1 MiB tmpfs (mount -t tmpfs -o size=1m); run the suite as root (CI does)")
	}
	t.Parallel()
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":full-disk"
	small := amd64Files(t, 60, 16<<10, 32<<10)
	large := amd64Files(t, 61, 16<<10, 4<<20)
	push(t, ref, small)

	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -t tmpfs -o size=1m tmpfs %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	mustOK(t, "pull", ref, "--dest", dir, "--plain-http")
	before := snapshot(t, dir)

	push(t, ref, large)
	r := ipa(t, "pull", ref, "--dest", dir, "--plain-http")
	// A full disk is not retried: the only line on stderr is the error.
	if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasPrefix(r.stderr, "ipa-oci: pull "+ref+": ") {
		t.Errorf("pull into a full disk: exit %d, stderr:\n%s\nwant exit 1 and one line \"ipa-oci: pull %s: ... no space left on device\"", r.code, r.stderr, ref)
	}
	t.Logf("full disk error: %s", strings.TrimSpace(r.stderr))
	assertUntouched(t, dir, before, nil)
	assertServes(t, dir, small)
	sha256sumCheck(t, dir)
	if out := mustOK(t, "verify", dir); out != "OK "+dir+"\n" {
		t.Errorf("verify after the failed pull: %q", out)
	}
}

// TestE2EKillMidTransfer kills `ipa-oci pull` with SIGKILL in the middle of an 8 MB initramfs
// coming through a throttled proxy: DIR still serves the previous version byte-exact, the
// partial download is kept, and the next pull resumes it with an HTTP Range request.
func TestE2EKillMidTransfer(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	proxy := startProxy(t, reg.Host)
	ref := proxy.Addr + "/" + e2eRepo + ":kill"
	v1 := amd64Files(t, 70, 32<<10, 64<<10)
	v2 := amd64Files(t, 71, 32<<10, 8<<20)
	d1 := push(t, reg.Host+"/"+e2eRepo+":kill", v1)
	dir := filepath.Join(t.TempDir(), "ipa")
	mustOK(t, "pull", ref, "--dest", dir, "--plain-http")
	before := snapshot(t, dir)
	d2 := push(t, reg.Host+"/"+e2eRepo+":kill", v2)

	proxy.rate.Store(1 << 20) // 1 MB/s
	p := startIPA(t, "pull", ref, "--dest", dir, "--plain-http")
	// Wait for the initramfs to be partly there, hold the proxy so the transfer is surely
	// unfinished, and kill the puller.
	part := filepath.Join(dir, ".ipa-oci", "partial", sha256hex(v2.initramfs)+".part")
	waitFor(t, "a partial initramfs of 512 KiB", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() >= 512<<10
	})
	proxy.held.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != -int(syscall.SIGKILL) {
		t.Fatalf("pull was not killed (exit %d):\n%s", code, p.output.String())
	}
	proxy.held.Store(false)
	proxy.rate.Store(0)

	// The previous version is served byte-exact; what is new is the partial download and the
	// killed pull's unfinished version directory.
	assertUntouched(t, dir, before, func(rel string) bool {
		return strings.HasPrefix(rel, filepath.Join(".ipa-oci", "amd64", "versions")+"/.")
	})
	assertServes(t, dir, v1)
	sha256sumCheck(t, dir)
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("no partial file after the kill: %v", err)
	}
	have := st.Size()
	if have <= 0 || have >= int64(len(v2.initramfs)) {
		t.Fatalf("partial file has %d of %d bytes", have, len(v2.initramfs))
	}

	proxy.requests()
	out := mustOK(t, "pull", ref, "--dest", dir, "--plain-http")
	if out != "updated amd64 "+d2+"\n" {
		t.Errorf("pull after the kill: %q", out)
	}
	assertServes(t, dir, v2)
	sha256sumCheck(t, dir)
	reqs, raw := proxy.requests()
	ranges := rangeHeaders(raw)
	want := fmt.Sprintf("bytes=%d-", have)
	if len(ranges) != 1 || ranges[0] != want {
		t.Errorf("Range headers %q, want one %q (resume of the partial file); requests %q", ranges, want, reqs)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, ".ipa-oci", "partial", "*")); len(parts) != 0 {
		t.Errorf("partial files left after the resumed pull: %v", parts)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".ipa-oci", "amd64", "versions", ".*")); len(leftovers) != 0 {
		t.Errorf("the killed pull's temporary version directory was not cleaned up: %v", leftovers)
	}
	if out := mustOK(t, "rollback", "--dest", dir); out != "rolled back amd64 "+d1+"\n" {
		t.Errorf("rollback: %q", out)
	}
	assertServes(t, dir, v1)
}

// TestE2EConcurrentPulls runs two pulls into one DIR at once: the second waits for the
// first's lock, then finds DIR up to date; both exit 0 and DIR is consistent.
func TestE2EConcurrentPulls(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	proxy := startProxy(t, reg.Host)
	ref := proxy.Addr + "/" + e2eRepo + ":concurrent"
	f := amd64Files(t, 80, 32<<10, 2<<20)
	d := push(t, reg.Host+"/"+e2eRepo+":concurrent", f)
	dir := filepath.Join(t.TempDir(), "ipa")

	proxy.rate.Store(4 << 20)
	first := startIPA(t, "pull", ref, "--dest", dir, "--plain-http")
	part := filepath.Join(dir, ".ipa-oci", "partial", sha256hex(f.initramfs)+".part")
	waitFor(t, "the first pull to be downloading", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() > 0
	})
	// The first pull holds the lock while it downloads; hold its transfer until the second
	// has said it waits.
	proxy.held.Store(true)
	second := startIPA(t, "pull", ref, "--dest", dir, "--plain-http")
	second.waitLine(t, "the second pull waiting for the lock", func(l string) bool {
		return strings.Contains(l, "another ipa-oci pull holds "+filepath.Join(dir, ".ipa-oci", "lock")+"; waiting")
	})
	proxy.held.Store(false)
	first.waitLine(t, "the first pull's result", func(l string) bool { return strings.HasPrefix(l, "out: ") })
	second.waitLine(t, "the second pull's result", func(l string) bool { return strings.HasPrefix(l, "out: ") })
	if c1, c2 := first.wait(t), second.wait(t); c1 != 0 || c2 != 0 {
		t.Fatalf("exit codes %d and %d\nfirst:\n%s\nsecond:\n%s", c1, c2, first.output.String(), second.output.String())
	}
	if !strings.Contains(first.output.String(), "out: updated amd64 "+d+"\n") ||
		!strings.Contains(second.output.String(), "out: up to date amd64 "+d+"\n") {
		t.Errorf("want the first pull to update and the second to find DIR up to date:\nfirst:\n%s\nsecond:\n%s", first.output.String(), second.output.String())
	}
	assertServes(t, dir, f)
	sha256sumCheck(t, dir)
	if out := mustOK(t, "verify", dir); out != "OK "+dir+"\n" {
		t.Errorf("verify: %q", out)
	}
}

// TestE2EInterval runs `pull --interval` in the background: it picks up a new push on its
// own, runs --exec for it, and exits 0 on SIGTERM.
func TestE2EInterval(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":interval"
	v1 := amd64Files(t, 90, 16<<10, 32<<10)
	v2 := amd64Files(t, 91, 16<<10, 48<<10)
	d1 := push(t, ref, v1)
	dir := filepath.Join(t.TempDir(), "ipa")
	marker := filepath.Join(t.TempDir(), "updates.log")

	p := startIPA(t, "pull", ref, "--dest", dir, "--interval", "200ms", "--plain-http",
		"--exec", `echo "$IPA_OCI_INDEX_DIGEST" >>`+marker)
	p.waitLine(t, "the first update", func(l string) bool { return l == "out: updated amd64 "+d1 })
	p.waitLine(t, "a re-check", func(l string) bool { return l == "out: up to date amd64 "+d1 })
	assertServes(t, dir, v1)
	d2 := push(t, ref, v2)
	p.waitLine(t, "the update to the new push", func(l string) bool { return l == "out: updated amd64 "+d2 })
	assertServes(t, dir, v2)
	p.waitLine(t, "a re-check after the update", func(l string) bool { return l == "out: up to date amd64 "+d2 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("pull --interval exit %d on SIGTERM, want 0:\n%s", code, p.output.String())
	}
	if got, _ := os.ReadFile(marker); string(got) != d1+"\n"+d2+"\n" {
		t.Errorf("--exec ran for:\n%s\nwant exactly the two updates %s and %s", got, d1, d2)
	}
	sha256sumCheck(t, dir)
}
