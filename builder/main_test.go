package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/cachedir"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// The tests run the real builder image (built from ../Dockerfile.builder on the debootstrap
// base image that scripts/setup-test-env.sh imports) against testdata/buildroot-standin, a
// small stand-in for a Buildroot tree: real Buildroot's downloads are not reachable here.

const testBaseImage = "ipa-oci/debian-base:bookworm"

// The tests talk to the engine DOCKER_HOST names (default: the local dockerd). scripts/test.sh
// runs them a second time against Podman's Docker-compatible socket with
// IPA_OCI_TEST_ENGINE=podman, and some of them a third time against rootless Podman with
// IPA_OCI_TEST_ENGINE=podman-rootless: when that variable is set, the setup fails unless the
// engine answering is the one named, so a mistyped socket cannot run the Docker tests twice.
const testEngineEnv = "IPA_OCI_TEST_ENGINE"

// Engine kinds, as engineKind reports them.
const (
	engineDocker = "docker"
	enginePodman = "podman"
)

// engineKind says whether cli talks to dockerd or to Podman's compatible API, and its version.
func engineKind(ctx context.Context, cli client.APIClient) (kind, version string, facts engineFacts, err error) {
	if facts, err = probeEngine(ctx, cli); err != nil {
		return "", "", facts, err
	}
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return "", "", facts, err
	}
	for _, c := range v.Components {
		if facts.podman && strings.HasPrefix(c.Name, "Podman") {
			return enginePodman, c.Version, facts, nil
		}
	}
	return engineDocker, v.Version, facts, nil
}

// env is the shared test environment set up once in TestMain.
type testEnv struct {
	cli      *client.Client
	engine   string // engineDocker or enginePodman
	facts    engineFacts
	imageID  string
	imageTag string           // the test builder image's tag (per recipe)
	srv      *httptest.Server // serves the stand-in source and the stand-in Buildroot tarball
	srcURL   string
	srcSHA   string
	brURL    string
	brSHA    string
	brHits   *counter
	standin  string // abs path of testdata/buildroot-standin
	setupErr error
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(p string) { c.mu.Lock(); c.n[p]++; c.mu.Unlock() }
func (c *counter) get(p string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[p]
}

var tenv testEnv

// testCacheDir is the cache directory the builder uses by default (internal/cachedir).
func testCacheDir(t testing.TB) string {
	t.Helper()
	d, err := cachedir.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() { // -short runs only the tests that need no Docker engine
		tenv.setupErr = setupTestEnv()
	}
	code := m.Run()
	if tenv.srv != nil {
		tenv.srv.Close()
	}
	os.Exit(code)
}

func setupTestEnv() error {
	ctx := context.Background()
	cli, err := NewDockerClient(ctx)
	if err != nil {
		return fmt.Errorf("%w (run scripts/setup-test-env.sh)", err)
	}
	tenv.cli = cli
	kind, version, facts, err := engineKind(ctx, cli)
	if err != nil {
		return err
	}
	tenv.facts = facts
	got := kind
	if facts.rootless {
		got += "-rootless"
	}
	if want := os.Getenv(testEngineEnv); want != "" && want != got {
		return fmt.Errorf("%s=%s, but the engine at %s is %s %s (check DOCKER_HOST)", testEngineEnv, want, cli.DaemonHost(), got, version)
	}
	tenv.engine = kind
	fmt.Fprintf(os.Stderr, "builder tests: %s %s at %s\n", got, version, cli.DaemonHost())
	if _, err := cli.ImageInspect(ctx, testBaseImage); err != nil {
		return fmt.Errorf("base image %s missing (scripts/setup-test-env.sh imports it): %w", testBaseImage, err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts, err := testImageOptions(log)
	if err != nil {
		return err
	}
	tenv.imageTag = opts.Tag
	id, err := EnsureImage(ctx, cli, opts)
	if err != nil {
		return fmt.Errorf("builder image: %w", err)
	}
	tenv.imageID = id
	if tenv.standin, err = filepath.Abs("testdata/buildroot-standin"); err != nil {
		return err
	}

	src := bytes.Repeat([]byte("stand-in package source 1.0\n"), 1000)
	brTar, err := tarGzDir(tenv.standin, "buildroot-standin-1.0")
	if err != nil {
		return err
	}
	tenv.srcSHA, tenv.brSHA = sha256hex(src), sha256hex(brTar)
	tenv.brHits = &counter{n: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/standin-src-1.0.tar", func(w http.ResponseWriter, r *http.Request) {
		tenv.brHits.inc(r.URL.Path)
		w.Write(src)
	})
	mux.HandleFunc("/buildroot-standin-1.0.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		tenv.brHits.inc(r.URL.Path)
		w.Write(brTar)
	})
	// Listen on all interfaces' loopback: the fetch container shares the host network.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tenv.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	tenv.srv.Start()
	tenv.srcURL = tenv.srv.URL + "/standin-src-1.0.tar"
	tenv.brURL = tenv.srv.URL + "/buildroot-standin-1.0.tar.gz"
	return nil
}

// testImageOptions build the suite's builder image from the debootstrap base. The tag names
// the recipe (ipa-oci/builder:test-<recipe>), so branches with another Dockerfile.builder that
// share the engine never retag each other's image.
func testImageOptions(log logrus.FieldLogger) (ImageOptions, error) {
	df, err := os.ReadFile("../Dockerfile.builder")
	if err != nil {
		return ImageOptions{}, err
	}
	args := map[string]string{"BASE_IMAGE": testBaseImage}
	return ImageOptions{
		Dockerfile: "../Dockerfile.builder",
		BuildArgs:  args,
		Tag:        "ipa-oci/builder:test-" + Recipe(df, args)[:12],
		Log:        log,
	}, nil
}

func needEnv(t testing.TB) {
	t.Helper()
	testenv.SkipInShort(t, "a Docker engine and the builder image")
	if tenv.setupErr != nil {
		t.Fatalf("test environment: %v", tenv.setupErr)
	}
}

func sha256hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// tarGzDir packs dir under prefix/ like a release tarball.
func tarGzDir(dir, prefix string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(filepath.Join(prefix, rel))
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tw.Close()
	zw.Close()
	return buf.Bytes(), nil
}

// fixture is one test's build inputs in a temp dir.
type fixture struct {
	dir      string
	external string
	ipaRepo  string // file:// URL of a bare repo
	reqRepo  string
	ipaHead  string
	ipaTime  int64
	logBuf   *syncBuffer
	log      *logrus.Logger
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// defconfigExtra lines are appended to the test defconfig (STANDIN_FAIL=..., STANDIN_SLEEP=...).
func newFixture(t testing.TB, defconfigExtra ...string) *fixture {
	t.Helper()
	needEnv(t)
	dir := t.TempDir()
	f := &fixture{dir: dir, external: filepath.Join(dir, "external"), logBuf: &syncBuffer{}}
	mustWrite(t, filepath.Join(f.external, "configs", "test_defconfig"),
		fmt.Sprintf("STANDIN_SOURCE_URL=%q\nSTANDIN_SOURCE_SHA256=%q\nBR2_ROOTFS_POST_BUILD_SCRIPT=\"$(BR2_EXTERNAL_IPA_PATH)/report.sh\"\n%s",
			tenv.srcURL, tenv.srcSHA, strings.Join(defconfigExtra, "\n")))
	mustWrite(t, filepath.Join(f.external, "rootfs-overlay", "etc", "motd"), "ipa-oci stand-in test\n")
	// report.sh says what a phase container sees: mounts and their options, where it may
	// write, capabilities, no-new-privileges, the pids limit. The fetch phase runs it as the
	// external tree's fetch hook, the build phase as a post-build script.
	mustWriteExec(t, filepath.Join(f.external, "report.sh"), reportScript)
	mustWriteExec(t, filepath.Join(f.external, "ipa-oci-fetch.sh"), `#!/bin/bash
/ipa/external/report.sh
echo "FETCH-ENV secret=${IPA_OCI_TEST_SECRET:-unset} proxy=${http_proxy:-unset} uid=$(id -u)"
`)
	f.ipaRepo, f.ipaHead, f.ipaTime = makeRepo(t, filepath.Join(dir, "git", "ipa"), "1700000000")
	f.reqRepo, _, _ = makeRepo(t, filepath.Join(dir, "git", "requirements"), "1700000100")
	f.log = logrus.New()
	f.log.SetOutput(io.MultiWriter(f.logBuf, testWriter{t}))
	f.log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// makeRepo creates a bare git repo with one commit (fixed dates) on master and tag v1.0.
func makeRepo(t testing.TB, dir, date string) (url, head string, commitTime int64) {
	t.Helper()
	work := dir + ".work"
	env := append(os.Environ(), "GIT_AUTHOR_DATE="+date+" +0000", "GIT_COMMITTER_DATE="+date+" +0000",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	run := func(d string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = d, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	mustWrite(t, filepath.Join(work, "README"), "repo "+filepath.Base(dir)+"\n")
	run(work, "init", "-q", "-b", "master")
	run(work, "add", ".")
	run(work, "commit", "-q", "-m", "initial")
	run(work, "tag", "-a", "-m", "v1.0", "v1.0")
	run(filepath.Dir(dir), "clone", "-q", "--bare", work, dir)
	head = run(work, "rev-parse", "HEAD")
	var ts int64
	fmt.Sscan(date, &ts)
	return "file://" + dir, head, ts
}

// reportScript prints "MOUNT phase path ro|rw", "WRITE phase path ok|denied", "CAPS phase
// bounding effective", "NNP phase 0|1" and "PIDS phase max" lines.
const reportScript = `#!/bin/bash
phase=${IPA_OCI_PHASE:-unknown}
for m in / /ipa/buildroot /ipa/external /ipa/kernel-config /ipa/output /ipa/dl /ipa/dl/ipa-oci-git /ipa/dl/.ipa-oci-fetch /ipa/ccache; do
  awk -v m="$m" -v p="$phase" '$5 == m { split($6, o, ","); print "MOUNT " p " " m " " o[1] }' /proc/self/mountinfo
done
for d in /ipa/external /ipa/dl /ipa/dl/ipa-oci-git /ipa/dl/.ipa-oci-fetch /ipa/output /ipa/ccache /tmp; do
  if [ -d "$d" ] && (: > "$d/.probe-$$") 2>/dev/null; then rm -f "$d/.probe-$$"; echo "WRITE $phase $d ok"; else echo "WRITE $phase $d denied"; fi
done
echo "CAPS $phase $(awk '/^CapBnd/ {print $2}' /proc/self/status) $(awk '/^CapEff/ {print $2}' /proc/self/status)"
echo "NNP $phase $(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
echo "PIDS $phase $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max 2>/dev/null)"
`

func mustWriteExec(t testing.TB, p, content string) {
	t.Helper()
	mustWrite(t, p, content)
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// options returns build options for the fixture writing to out, sharing dl/cache dirs of f.
func (f *fixture) options(out string) Options {
	return Options{
		Buildroot:    BuildrootConfig{Version: "standin-1.0", URL: tenv.brURL, SHA256: tenv.brSHA},
		External:     f.external,
		Defconfig:    "test_defconfig",
		Arch:         "x86_64", // normalised to amd64
		IPA:          GitSource{Repo: f.ipaRepo, Ref: "master"},
		Requirements: GitSource{Repo: f.reqRepo, Ref: "v1.0"},
		Output:       out,
		DLDir:        filepath.Join(f.dir, "dl"),
		CcacheDir:    filepath.Join(f.dir, "ccache"),
		CacheDir:     filepath.Join(f.dir, "cache"),
		BuilderImage: tenv.imageID,
		BuilderPin:   tenv.imageID,
		HostEnv:      []string{"IPA_OCI_TEST_SECRET=hunter2", "http_proxy=http://proxy.invalid:3128", "no_proxy=127.0.0.1,localhost", "PATH=/usr/bin"},
		// The shared test engine runs with --bridge=none and the test server listens on the
		// host's loopback: the fetch phase shares the host's network (bridge: fetchnet_test.go).
		HostNetwork: true,
		Log:         f.log,
		Docker:      tenv.cli,
	}
}
