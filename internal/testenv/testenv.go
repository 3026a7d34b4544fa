// Package testenv starts the real components the tests run against: a CNCF Distribution
// registry process (plain HTTP, with htpasswd, or over TLS with a test CA), and the pinned Go
// tools (oras, crane) built from go.mod's tool block; the registry from internal/cmd/registry.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RepoRoot returns the repository's top directory (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Tool returns the path of a tool pinned in go.mod (registry, oras, crane), building it into
// .bin/ if scripts/setup-test-env.sh has not already.
func Tool(t testing.TB, name string) string {
	t.Helper()
	pkgs := map[string]string{
		"registry": "./internal/cmd/registry", // Distribution without cloud storage drivers
		"oras":     "oras.land/oras/cmd/oras",
		"crane":    "github.com/google/go-containerregistry/cmd/crane",
	}
	root := RepoRoot(t)
	bin := filepath.Join(root, ".bin", name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Build beside the final name and rename, so concurrent tests never run a half-written binary.
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, pkgs[name])
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// DiffLines lists the lines only in a ("- line") or only in b ("+ line"), for failure
// messages about two versions of a file.
func DiffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ina[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Registry is a running Distribution registry process.
type Registry struct {
	Host    string // 127.0.0.1:PORT
	Storage string // its filesystem storage root
	cmd     *exec.Cmd
	log     *bytes.Buffer
}

// StartRegistry starts a real CNCF Distribution registry on a random loopback port, storing
// into a temporary directory, and stops it when the test ends.
func StartRegistry(t testing.TB) *Registry { return startRegistry(t, "") }

// StartRegistryWithAuth is StartRegistry with htpasswd (HTTP basic) authentication for one user.
func StartRegistryWithAuth(t testing.TB, user, password string) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRegistry(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: ipa-oci-test\n    path: %s\n", htpasswd))
}

func startRegistry(t testing.TB, extraConfig string) *Registry {
	t.Helper()
	return start(t, registrySetup{addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), extraConfig: extraConfig})
}

// registrySetup is how start runs the registry: listen address, extra configuration under
// http: and at the top level, and how to probe it (default plain HTTP, http.DefaultClient).
type registrySetup struct {
	addr                   string
	httpExtra, extraConfig string
	scheme                 string
	client                 *http.Client
}

func start(t testing.TB, s registrySetup) *Registry {
	t.Helper()
	if s.scheme == "" {
		s.scheme = "http"
	}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	bin := Tool(t, "registry")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), s.addr) + s.httpExtra + s.extraConfig
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Registry{Host: s.addr, Storage: filepath.Join(dir, "data"), log: &bytes.Buffer{}}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		if t.Failed() {
			t.Logf("registry log:\n%s", r.log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := s.client.Get(s.scheme + "://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("registry did not answer on %s: %v\n%s", r.Host, err, r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SkipInShort skips t in -short mode, which runs only the fast tests: those that need no
// Docker engine, no QEMU boot and no kernel build. needs says what the test needs.
func SkipInShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped in -short mode: needs %s (run without -short for the whole suite)", needs)
	}
}
