package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// faultFixture is a real registry holding v1 and v2 of an artifact, a proxy in front of it,
// and a DIR already serving v1.
type faultFixture struct {
	proxy          *faultProxy
	ref            string // through the proxy
	dir            string
	v1k, v1i       string
	v2k, v2i       string
	v2InitramfsHex string
}

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	reg := testenv.StartRegistry(t)
	f := &faultFixture{proxy: newFaultProxy(t, reg.Host), dir: t.TempDir()}
	direct := reg.Host + "/ipa/agent:stable"
	f.ref = f.proxy.Host() + "/ipa/agent:stable"
	f.v1k, f.v1i = imagestest.PushFake(t, direct, "v1", 1<<20)
	if _, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, fastRetry()...); err != nil {
		t.Fatalf("pull v1: %v", err)
	}
	f.v2k, f.v2i = imagestest.PushFake(t, direct, "v2", 3<<20)
	d, _, err := content.FileDigest(context.Background(), f.v2i)
	if err != nil {
		t.Fatal(err)
	}
	f.v2InitramfsHex = d.Encoded()
	f.proxy.reset()
	return f
}

func fastRetry() []store.Option {
	return []store.Option{store.WithRetry(3, 10*time.Millisecond)}
}

func (f *faultFixture) partials(t *testing.T) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dir, ".ipa-oci", "partial", "*.part"))
	return m
}

func TestPullRetries500s(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.fail500 = f.v2InitramfsHex, 2 })
	res, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, fastRetry()...)
	if err != nil {
		t.Fatalf("pull through two 500s: %v", err)
	}
	if !res.Updated {
		t.Fatal("pull did not update")
	}
	testenv.AssertServes(t, f.dir, f.v2k, f.v2i)
	gets := 0
	for _, r := range f.proxy.seen() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, f.v2InitramfsHex) {
			gets++
		}
	}
	if gets != 3 {
		t.Fatalf("initramfs blob GETs = %d, want 3 (two 500s, one success)", gets)
	}
}

func TestPullGivesUpOn500sAndKeepsOldFiles(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.fail500 = f.v2InitramfsHex, 100 })
	_, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, fastRetry()...)
	if err == nil || !strings.Contains(err.Error(), "Internal Server Error") {
		t.Fatalf("pull against a failing registry: err = %v, want the 500 named", err)
	}
	testenv.AssertServes(t, f.dir, f.v1k, f.v1i)
}

func TestPullResumesCutConnection(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.cutAfter = f.v2InitramfsHex, 1<<20 })
	if _, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, fastRetry()...); err != nil {
		t.Fatalf("pull through a cut connection: %v", err)
	}
	testenv.AssertServes(t, f.dir, f.v2k, f.v2i)
	var ranges []string
	for _, r := range f.proxy.seen() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, f.v2InitramfsHex) {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Fatalf("initramfs requests' Range headers = %q, want a full GET then a resume from the cut", ranges)
	}
	if p := f.partials(t); len(p) != 0 {
		t.Fatalf("partial files left after success: %v", p)
	}
}

func TestPullInterruptedThenResumedOnNextRun(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.cutAfter = f.v2InitramfsHex, 2<<20 })
	noRetry := store.WithRetry(0, time.Millisecond)
	_, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, noRetry)
	if err == nil {
		t.Fatal("pull with a cut connection and no retries succeeded")
	}
	testenv.AssertServes(t, f.dir, f.v1k, f.v1i)
	// The initramfs transfer was cut; the kernel's, if it had not finished, was cancelled with
	// it and may be kept for resuming too.
	part := filepath.Join(f.dir, ".ipa-oci", "partial", f.v2InitramfsHex+".part")
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("no partial file for the interrupted initramfs (partials: %v): %v", f.partials(t), err)
	}
	if st.Size() == 0 || st.Size() > 2<<20 {
		t.Fatalf("partial file holds %d bytes, want the bytes before the cut", st.Size())
	}
	f.proxy.reset()
	if _, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}); err != nil {
		t.Fatalf("resumed pull: %v", err)
	}
	testenv.AssertServes(t, f.dir, f.v2k, f.v2i)
	var resumed bool
	for _, r := range f.proxy.seen() {
		if strings.HasSuffix(r.Path, f.v2InitramfsHex) && r.Method == "GET" {
			resumed = r.Range == "bytes="+strconv.FormatInt(st.Size(), 10)+"-"
		}
	}
	if !resumed {
		t.Fatalf("next run did not resume from byte %d: requests %+v", st.Size(), f.proxy.seen())
	}
}

func TestPullRejectsCorruptedBlob(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.corruptAt = f.v2InitramfsHex, 12345 })
	_, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, fastRetry()...)
	if !errors.Is(err, content.ErrDigestMismatch) || !strings.Contains(err.Error(), f.v2InitramfsHex) {
		t.Fatalf("pull of a corrupted blob: err = %v, want a digest mismatch naming the blob", err)
	}
	testenv.AssertServes(t, f.dir, f.v1k, f.v1i)
	// The corrupt blob's partial is discarded (the kernel's, if its transfer was cancelled by
	// the failure, may stay for resuming).
	if _, err := os.Stat(filepath.Join(f.dir, ".ipa-oci", "partial", f.v2InitramfsHex+".part")); err == nil {
		t.Fatalf("corrupt partial kept: %v", f.partials(t))
	}
	sums := testenv.MustRead(t, filepath.Join(f.dir, "SHA256SUMS"))
	d1, _, _ := content.FileDigest(context.Background(), f.v1i)
	if !strings.Contains(string(sums), d1.Encoded()+"  ironic-python-agent.initramfs") {
		t.Fatalf("SHA256SUMS no longer describes v1:\n%s", sums)
	}
}

func TestUpToDateCostsOneManifestRequest(t *testing.T) {
	f := newFaultFixture(t)
	if _, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, f.dir)
	f.proxy.reset()
	res, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Updated {
		t.Fatal("second pull of an unchanged tag reported an update")
	}
	var manifestReqs []seenRequest
	for _, r := range f.proxy.seen() {
		if r.Path != "/v2/" {
			manifestReqs = append(manifestReqs, r)
		}
	}
	if len(manifestReqs) != 1 || manifestReqs[0].Method != "HEAD" || !strings.Contains(manifestReqs[0].Path, "/manifests/stable") {
		t.Fatalf("up-to-date pull sent %+v, want exactly one manifest HEAD", manifestReqs)
	}
	if after := snapshotDir(t, f.dir); after != before {
		t.Fatalf("up-to-date pull rewrote files:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshotDir describes every file under dir by name, inode, size and mtime.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.Name() == "lock" {
			return nil
		}
		b.WriteString(p + " " + info.ModTime().String() + " " + strconv.FormatInt(info.Size(), 10) + " " + strconv.FormatUint(testenv.Inode(info), 10) + "\n")
		return nil
	})
	return b.String()
}

func TestPushSkipsBlobsTheRegistryHas(t *testing.T) {
	reg := testenv.StartRegistry(t)
	proxy := newFaultProxy(t, reg.Host)
	src := t.TempDir()
	k, i := testenv.FakeKernel(t, src, 64<<10), testenv.FakeInitramfs(t, src, 1<<20)
	uploads := func() int {
		n := 0
		for _, r := range proxy.seen() {
			if r.Method == "POST" && strings.HasSuffix(r.Path, "/blobs/uploads/") {
				n++
			}
		}
		return n
	}
	req := artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "1"}
	if _, err := imagestest.Push(context.Background(), proxy.Host()+"/ipa/agent:one", req); err != nil {
		t.Fatal(err)
	}
	if n := uploads(); n != 3 {
		t.Fatalf("first push started %d blob uploads, want 3 (empty config, kernel, initramfs)", n)
	}
	proxy.reset()
	if _, err := imagestest.Push(context.Background(), proxy.Host()+"/ipa/agent:two", req); err != nil {
		t.Fatal(err)
	}
	if n := uploads(); n != 0 {
		t.Fatalf("second push of the same files started %d blob uploads, want 0", n)
	}
}

// blobGETs counts the proxy's GET requests for the blob whose digest ends in hex.
func (p *faultProxy) blobGETs(hex string) int {
	n := 0
	for _, r := range p.seen() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, hex) {
			n++
		}
	}
	return n
}

// loggedWaits returns the "wait" fields of the retry warnings logged, in order.
func loggedWaits(t *testing.T, hook *logtest.Hook) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, e := range hook.AllEntries() {
		w, ok := e.Data["wait"]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(fmt.Sprint(w))
		if err != nil {
			t.Fatalf("log entry %q: wait %v: %v", e.Message, w, err)
		}
		out = append(out, d)
	}
	return out
}

// TestPullRetryIsOneLayer: a registry answering 500 forever for a blob gets exactly 1+retries
// GETs for it, and the waits logged are the backoff schedule once (1, 3, 9, 27 ms here): one
// retry layer, not the download loop's retries around FetchBlob's own.
func TestPullRetryIsOneLayer(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.fail500 = f.v2InitramfsHex, 1<<30 })
	logger, hook := logtest.NewNullLogger()
	_, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir},
		store.WithRetry(4, time.Millisecond), store.WithLogger(logger))
	if err == nil || !strings.Contains(err.Error(), "Internal Server Error") {
		t.Fatalf("pull against a blob answering 500: err = %v, want the 500 named", err)
	}
	if n := f.proxy.blobGETs(f.v2InitramfsHex); n != 5 {
		t.Errorf("initramfs blob GETs = %d, want 5 (one attempt and 4 retries)", n)
	}
	waits := loggedWaits(t, hook)
	var sum time.Duration
	for _, w := range waits {
		sum += w
	}
	if fmt.Sprint(waits) != "[1ms 3ms 9ms 27ms]" || sum != 40*time.Millisecond {
		t.Errorf("retry waits logged %v (sum %v), want [1ms 3ms 9ms 27ms] (sum 40ms)", waits, sum)
	}
	testenv.AssertServes(t, f.dir, f.v1k, f.v1i)
}

// TestPullRetryDefaultSchedule: with the default policy, a blob answering 500 forever costs 5
// GETs and waits of 1s, 3s, 9s and 10s (23s), as the README says; the waits are recorded
// through the policy's sleep instead of being waited out.
func TestPullRetryDefaultSchedule(t *testing.T) {
	f := newFaultFixture(t)
	f.proxy.set(func(p *faultProxy) { p.blobSuffix, p.fail500 = f.v2InitramfsHex, 1<<30 })
	var mu sync.Mutex
	var slept []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return ctx.Err()
	}
	logger, hook := logtest.NewNullLogger()
	_, err := imagestest.Pull(context.Background(), f.ref, bootdir.PullOptions{Dest: f.dir}, store.WithSleep(sleep), store.WithLogger(logger))
	if err == nil || !strings.Contains(err.Error(), "Internal Server Error") {
		t.Fatalf("pull against a blob answering 500: err = %v, want the 500 named", err)
	}
	if n := f.proxy.blobGETs(f.v2InitramfsHex); n != 5 {
		t.Errorf("initramfs blob GETs = %d, want 5", n)
	}
	var sum time.Duration
	for _, d := range slept {
		sum += d
	}
	if fmt.Sprint(slept) != "[1s 3s 9s 10s]" || sum != 23*time.Second {
		t.Errorf("retry waits %v (sum %v), want [1s 3s 9s 10s] (sum 23s)", slept, sum)
	}
	if logged := loggedWaits(t, hook); fmt.Sprint(logged) != fmt.Sprint(slept) {
		t.Errorf("logged waits %v differ from the waits taken %v", logged, slept)
	}
}
