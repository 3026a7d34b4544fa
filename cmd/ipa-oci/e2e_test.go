package main

// End-to-end tests: the real ipa-oci binary, built once in TestMain, run as a subprocess against
// a real CNCF Distribution registry (internal/testenv). They assert exit codes, stdout, the exact
// one-line error text, and that a pull destination keeps serving its previous files (same bytes,
// same inodes, same symlink targets) after every failure.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// ipaOCI is the binary under test, built by TestMain.
var ipaOCI string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ipa-oci-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(2)
	}
	ipaOCI = filepath.Join(dir, "ipa-oci")
	build := exec.Command("go", "build", "-o", ipaOCI, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build -o", ipaOCI, ".:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------------------------
// Running the binary

type result struct {
	code           int
	stdout, stderr string
}

// ipa runs the binary to completion with args (a 2-minute safety net, never a timed assertion).
func ipa(t *testing.T, args ...string) result {
	t.Helper()
	return ipaEnv(t, nil, args...)
}

func ipaEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipaOCI, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run ipa-oci %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// cleanEnv is the environment without variables that would change what the binary does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "SOURCE_DATE_EPOCH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// mustOK runs the binary and fails the test unless it exits 0; it returns stdout.
func mustOK(t *testing.T, args ...string) string {
	t.Helper()
	r := ipa(t, args...)
	if r.code != 0 {
		t.Fatalf("ipa-oci %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// wantFailure checks that r is exit code `code` with exactly one stderr line, equal to want.
func wantFailure(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one line:\n%s", r.stderr)
	}
	if got := strings.TrimSuffix(r.stderr, "\n"); got != want {
		t.Errorf("error text:\n got: %s\nwant: %s", got, want)
	}
}

// ---------------------------------------------------------------------------------------------
// Test inputs

// payload returns size deterministic pseudo-random bytes for seed.
func payload(seed uint64, size int) []byte {
	var key [32]byte
	copy(key[:], fmt.Sprintf("ipa-oci-e2e-%d", seed))
	b := make([]byte, size)
	rand.NewChaCha8(key).Read(b)
	return b
}

// kernelBytes looks like an x86 bzImage ("HdrS" at 0x202).
func kernelBytes(seed uint64, size int) []byte {
	b := payload(seed, size)
	copy(b[0x202:], "HdrS")
	return b
}

// arm64KernelBytes looks like an arm64 Image ("ARM\x64" at 0x38).
func arm64KernelBytes(seed uint64, size int) []byte {
	b := payload(seed, size)
	copy(b[0x38:], "ARM\x64")
	return b
}

// initramfsBytes starts with the newc cpio magic.
func initramfsBytes(seed uint64, size int) []byte {
	b := payload(seed, size)
	copy(b, "070701")
	return b
}

// files is one architecture's kernel and initramfs on disk.
type files struct {
	kernel, initramfs      []byte
	kernelPath, initrdPath string
}

func writeFiles(t *testing.T, kernel, initramfs []byte) files {
	t.Helper()
	dir := t.TempDir()
	f := files{kernel: kernel, initramfs: initramfs,
		kernelPath: filepath.Join(dir, "bzImage"), initrdPath: filepath.Join(dir, "rootfs.cpio.xz")}
	if err := os.WriteFile(f.kernelPath, kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.initrdPath, initramfs, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// amd64Files makes a small amd64 kernel + initramfs pair for seed.
func amd64Files(t *testing.T, seed uint64, kernelSize, initrdSize int) files {
	return writeFiles(t, kernelBytes(seed, kernelSize), initramfsBytes(seed+1000, initrdSize))
}

// push pushes f to ref and returns the index digest it prints.
func push(t *testing.T, ref string, f files, args ...string) string {
	t.Helper()
	out := mustOK(t, append([]string{"push", ref, "--kernel", f.kernelPath, "--initramfs", f.initrdPath, "--plain-http"}, args...)...)
	d := strings.TrimSpace(out)
	if !strings.HasPrefix(d, "sha256:") || len(d) != 71 || strings.Contains(d, "\n") {
		t.Fatalf("push %s printed %q, want one sha256 digest", ref, out)
	}
	return d
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ---------------------------------------------------------------------------------------------
// Pull destination snapshots

// node is what a snapshot records of one path.
type node struct {
	kind   string // file, dir, symlink
	target string // symlink target
	ino    uint64
	size   int64
	mtime  int64
	sum    string
}

func (n node) String() string {
	switch n.kind {
	case "symlink":
		return "symlink -> " + n.target
	case "file":
		return fmt.Sprintf("file ino=%d size=%d mtime=%d sha256=%.12s", n.ino, n.size, n.mtime, n.sum)
	}
	return n.kind
}

// snapshot records every path under dir (relative), except interrupted downloads under
// .ipa-oci/partial, which a failed pull may legitimately leave for the next run to resume.
func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == filepath.Join(".ipa-oci", "partial") {
			return fs.SkipDir
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			tgt, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = node{kind: "symlink", target: tgt}
		case st.IsDir():
			out[rel] = node{kind: "dir"}
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = node{kind: "file", ino: sys.Ino, size: st.Size(), mtime: st.ModTime().UnixNano(), sum: sha256hex(b)}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return out
}

// assertUntouched checks that every path of before is still there unchanged and that nothing
// new appeared, except paths allowNew accepts (nil: none).
func assertUntouched(t *testing.T, dir string, before map[string]node, allowNew func(rel string) bool) {
	t.Helper()
	after := snapshot(t, dir)
	var diffs []string
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: removed (was %s)", p, b))
		} else if a != b {
			diffs = append(diffs, fmt.Sprintf("%s: %s -> %s", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok && (allowNew == nil || !allowNew(p)) {
			diffs = append(diffs, fmt.Sprintf("%s: new (%s)", p, a))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s changed:\n  %s", dir, strings.Join(diffs, "\n  "))
	}
}

// assertServes checks that DIR serves f under the amd64 names, byte-exact.
func assertServes(t *testing.T, dir string, f files) {
	t.Helper()
	for name, want := range map[string][]byte{"ironic-python-agent.kernel": f.kernel, "ironic-python-agent.initramfs": f.initramfs} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("DIR does not serve %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s: sha256 %.12s (%d bytes), want %.12s (%d bytes)", dir, name, sha256hex(got), len(got), sha256hex(want), len(want))
		}
	}
}

// sha256sumCheck runs `sha256sum -c SHA256SUMS` in dir and returns its output.
func sha256sumCheck(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c SHA256SUMS in %s: %v\n%s", dir, err, out)
	}
	return string(out)
}

func readSummaryFile(t *testing.T, dir string) bootdir.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ipa-oci.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s bootdir.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("ipa-oci.json: %v\n%s", err, b)
	}
	return s
}

// ---------------------------------------------------------------------------------------------
// Registry helpers (raw HTTP, as a client other than ipa-oci would see it)

// headManifest returns the digest a tag resolves to, or "" when the registry says 404.
func headManifest(t *testing.T, host, repo, ref string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest")
	case http.StatusNotFound:
		return ""
	}
	t.Fatalf("HEAD %s/%s:%s: %s", host, repo, ref, resp.Status)
	return ""
}

// getManifest fetches a manifest or index by tag or digest.
func getManifest(t *testing.T, host, repo, ref string, v any) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s/%s:%s: %s %s", host, repo, ref, resp.Status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// ---------------------------------------------------------------------------------------------
// Background processes

// bgProc is the binary running in the background, its output read line by line.
type bgProc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout and stderr lines, prefixed "out: " / "err: "
	done   chan struct{}
	code   int
	output bytes.Buffer // everything, for failure messages
}

func startIPA(t *testing.T, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(ipaOCI, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = cleanEnv()
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readers := make(chan struct{}, 2)
	scan := func(r io.Reader, prefix string) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case p.lines <- prefix + sc.Text():
			default: // nobody is listening for this many lines; keep draining
			}
		}
		readers <- struct{}{}
	}
	go scan(stdout, "out: ")
	go scan(stderr, "err: ")
	go func() {
		<-readers
		<-readers
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = -int(ws.Signal())
			}
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits until a line matching ok arrives (returning it), or fails after a generous
// safety deadline; it is a wait for an event, not a timing assertion.
func (p *bgProc) waitLine(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l := <-p.lines:
			p.output.WriteString(l + "\n")
			if ok(l) {
				return l
			}
		case <-p.done:
			// Drain what is left before giving up.
			for {
				select {
				case l := <-p.lines:
					p.output.WriteString(l + "\n")
					if ok(l) {
						return l
					}
				default:
					t.Fatalf("ipa-oci exited (code %d) before %s; output:\n%s", p.code, what, p.output.String())
				}
			}
		case <-deadline:
			t.Fatalf("no %s after 90s; output:\n%s", what, p.output.String())
		}
	}
}

// wait waits for the process to exit and returns its exit code (-signal if killed).
func (p *bgProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("ipa-oci did not exit; output:\n%s", p.output.String())
	}
	for {
		select {
		case l := <-p.lines:
			p.output.WriteString(l + "\n")
		default:
			return p.code
		}
	}
}

// waitFor polls cond until it holds (safety deadline 90s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// partialSize returns the total size of DIR/.ipa-oci/partial/*.part.
func partialSize(dir string) int64 {
	parts, _ := filepath.Glob(filepath.Join(dir, ".ipa-oci", "partial", "*.part"))
	var n int64
	for _, p := range parts {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

func startRegistry(t *testing.T) *testenv.Registry {
	t.Helper()
	return testenv.StartRegistry(t)
}
