package main

// End-to-end tests of `ipa-oci builder build`-built images driving `ipa-oci build --push` and
// `ipa-oci rebuild` against a real registry. Buildroot itself cannot be downloaded here, so the
// build runs builder/testdata/buildroot-standin, a small stand-in for a Buildroot tree (NOT
// Buildroot), inside the real builder image from Dockerfile.builder.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

func TestE2EBuildPushRebuild(t *testing.T) {
	root := testenv.RepoRoot(t)
	imageID, _ := e2eBuilderImage(t)
	tag := e2eBuilderTag(t)
	reg := testenv.StartRegistry(t)

	src := bytes.Repeat([]byte("stand-in source\n"), 100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(src) })}}
	srv.Start()
	defer srv.Close()

	dir := t.TempDir()
	ext := filepath.Join(dir, "buildroot-external")
	writeFile(t, filepath.Join(ext, "configs", "e2e_defconfig"),
		fmt.Sprintf("STANDIN_SOURCE_URL=%q\nSTANDIN_SOURCE_SHA256=%q\n", srv.URL+"/src-1.0.tar", sha256Hex(src)))
	writeFile(t, filepath.Join(ext, "rootfs-overlay", "etc", "motd"), "e2e\n")
	ipaRepo := gitRepo(t, filepath.Join(dir, "ipa.git"))
	cfg := filepath.Join(dir, "ipa-oci.yaml")
	writeConfig := func(pin string) {
		writeFile(t, cfg, fmt.Sprintf(`buildroot:
  src: %s
defconfig: e2e
ipa:
  repo: %s
  ref: master
builder:
  image: %s
  id: %q
output: out-config
dlDir: dl
ccacheDir: ccache
# The shared test engine has no bridge network; the test server is on the host's loopback.
hostNetwork: true
`, filepath.Join(root, "builder", "testdata", "buildroot-standin"), ipaRepo, tag, pin))
	}

	// A pin that does not match is refused.
	writeConfig("sha256:" + strings.Repeat("1", 64))
	r := ipa(t, "build", "-c", cfg, "-o", filepath.Join(dir, "out-bad"))
	if r.code != 1 || !strings.Contains(r.stderr, "pins sha256:1111") || !strings.Contains(r.stderr, "--builder-image") {
		t.Fatalf("pin mismatch: exit %d\n%s", r.code, r.stderr)
	}

	writeConfig(imageID)
	// --host-network=false overrides hostNetwork: true, and this engine has no bridge: refused
	// before any container runs, naming both ways to ask for host networking.
	r = ipa(t, "build", "-c", cfg, "-o", filepath.Join(dir, "out-nonet"), "--host-network=false")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || !strings.HasPrefix(last, "ipa-oci: the Docker engine has no default bridge network") ||
		!strings.Contains(last, "--host-network") || !strings.Contains(last, "hostNetwork: true") {
		t.Fatalf("fetch without a network: exit %d, want one error line naming --host-network and hostNetwork\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "starting phase") {
		t.Errorf("a phase container started without a network:\n%s", r.stderr)
	}
	ref := reg.Host + "/ipa/standin:e2e"
	out := filepath.Join(dir, "out-flag") // the flag wins over output: in the config
	r = ipa(t, "build", "-c", cfg, "-o", out, "--push", ref, "--plain-http", "--ipa-version", "1.0")
	if r.code != 0 {
		t.Fatalf("build --push: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out-config")); err == nil {
		t.Error("--output did not override output: from the config")
	}
	bi, err := builder.ReadBuildInfoFile(filepath.Join(out, builder.BuildInfoName))
	if err != nil {
		t.Fatal(err)
	}
	kernel := bi.Output(builder.KernelName).SHA256
	if !strings.Contains(r.stdout, kernel+"  "+filepath.Join(out, builder.KernelName)) || !strings.Contains(r.stdout, "pushed "+ref+"@sha256:") {
		t.Errorf("build stdout:\n%s", r.stdout)
	}

	// The auditor's rebuild: same inputs from the published build-info, same bytes.
	r = ipa(t, "rebuild", ref, "--plain-http", "-c", cfg, "-o", filepath.Join(dir, "out-rebuild"))
	if r.code != 0 {
		t.Fatalf("rebuild: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, name := range []string{builder.KernelName, builder.InitramfsName} {
		d := bi.Output(name).SHA256
		if want := fmt.Sprintf("MATCH  %s rebuilt %s recorded %s published %s", name, d, d, d); !strings.Contains(r.stdout, want) {
			t.Errorf("rebuild stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	// On a fresh download cache the rebuild fetches the recorded commit by its ID.
	r = ipa(t, "rebuild", ref, "--plain-http", "-c", cfg, "-o", filepath.Join(dir, "out-rebuild-fresh"), "--dl-dir", filepath.Join(dir, "dl-fresh"))
	if r.code != 0 || strings.Count(r.stdout, "MATCH ") != 2 {
		t.Fatalf("rebuild on a fresh cache: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// A changed external tree cannot reproduce the build: refused before building.
	writeFile(t, filepath.Join(ext, "rootfs-overlay", "etc", "motd"), "changed\n")
	r = ipa(t, "rebuild", ref, "--plain-http", "-c", cfg, "-o", filepath.Join(dir, "out-rebuild2"))
	if r.code != 1 || !strings.Contains(r.stderr, "external tree "+ext+" hashes to") || !strings.Contains(r.stderr, "but the build used "+bi.Inputs.External.SHA256) {
		t.Errorf("rebuild with a changed tree: exit %d\n%s", r.code, r.stderr)
	}
}

// TestE2EBuildInterrupt sends SIGINT to `ipa-oci build` while the build container runs: the
// container is killed and removed, and the command exits 130.
func TestE2EBuildInterrupt(t *testing.T) {
	ctx := context.Background()
	imageID, cli := e2eBuilderImage(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cmd := exec.Command(ipaOCI, offlineStandin(t, dir, imageID, "STANDIN_SLEEP=300\n")...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(log.String(), "standin: sleeping") {
		n, err := stderr.Read(buf)
		log.Write(buf[:n])
		if err != nil {
			cmd.Wait()
			t.Fatalf("build ended before the container slept:\n%s", log.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "build phase cancelled, builder container killed") {
		t.Errorf("stderr lacks the cancellation:\n%s", log.String())
	}
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", builder.LabelOutput+"="+out)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 0 {
		t.Errorf("%d builder containers left after SIGINT", len(res.Items))
	}
}

// e2eBuilderImage returns the test builder image (built once, reused by recipe label) and a client.
func e2eBuilderImage(t *testing.T) (string, *client.Client) {
	t.Helper()
	testenv.SkipInShort(t, "a Docker engine and the builder image")
	ctx := context.Background()
	cli, err := builder.NewDockerClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	id, err := builder.EnsureImage(ctx, cli, builder.ImageOptions{
		Dockerfile: filepath.Join(testenv.RepoRoot(t), "Dockerfile.builder"),
		BuildArgs:  e2eBuildArgs,
		Tag:        e2eBuilderTag(t),
		Log:        quiet,
	})
	if err != nil {
		t.Fatalf("builder image (scripts/setup-test-env.sh imports its base): %v", err)
	}
	return id, cli
}

var e2eBuildArgs = map[string]string{"BASE_IMAGE": "ipa-oci/debian-base:bookworm"}

// e2eBuilderTag is the test builder image's tag: it names the recipe, so branches with another
// Dockerfile.builder can share the engine.
func e2eBuilderTag(t *testing.T) string {
	t.Helper()
	df, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "Dockerfile.builder"))
	if err != nil {
		t.Fatal(err)
	}
	return "ipa-oci/builder:test-" + builder.Recipe(df, e2eBuildArgs)[:12]
}

// offlineStandin writes an external tree whose stand-in source is already in dir/dl, so an
// --offline build needs no server, and returns the build arguments for it.
func offlineStandin(t *testing.T, dir, imageID string, defconfigExtra string) []string {
	t.Helper()
	ext := filepath.Join(dir, "ext")
	src := []byte("stand-in source\n")
	writeFile(t, filepath.Join(ext, "configs", "t_defconfig"),
		fmt.Sprintf("STANDIN_SOURCE_URL=\"http://127.0.0.1:9/src.tar\"\nSTANDIN_SOURCE_SHA256=%q\n%s", sha256Hex(src), defconfigExtra))
	writeFile(t, filepath.Join(dir, "dl", "standin", "src.tar"), string(src))
	return []string{"build", "--offline", "--buildroot-src", filepath.Join(testenv.RepoRoot(t), "builder", "testdata", "buildroot-standin"),
		"--external", ext, "--defconfig", "t", "--source-date-epoch", "1700000000", "--builder-image", imageID,
		"-o", filepath.Join(dir, "out"), "--dl-dir", filepath.Join(dir, "dl"), "--ccache-dir", filepath.Join(dir, "ccache"),
		"--lock", filepath.Join(dir, "ipa-oci.lock")}
}

// TestE2EBuildProgressOnTTY runs `ipa-oci build` on a pseudo-terminal (util-linux script):
// stderr then carries the status line with the Buildroot package step.
func TestE2EBuildProgressOnTTY(t *testing.T) {
	imageID, _ := e2eBuilderImage(t)
	dir := t.TempDir()
	out := onTTY(t, offlineStandin(t, dir, imageID, "")...)
	// The status line (internal/progress.Status: spinner, step, elapsed time) is drawn from
	// the start of the line and ends by erasing the rest of it.
	if want := regexp.MustCompile(`\r\S+ \[build\] standin 1\.0: Building +\[[0-9hms]+\] \x1b\[0K`); !want.MatchString(out) {
		t.Errorf("no progress line %s on the terminal:\n%q", want, out)
	}
	// Without a terminal there is no status line.
	r := ipa(t, offlineStandin(t, t.TempDir(), imageID, "")...)
	if r.code != 0 || strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("build without a tty: exit %d, escape sequences in stderr: %q", r.code, r.stderr)
	}
}

// TestE2ERebuildDetectsIrreproducibleBuild publishes a deliberately irreproducible stand-in
// build; the auditor's rebuild must say DIFFER for the initramfs and exit 1.
func TestE2ERebuildDetectsIrreproducibleBuild(t *testing.T) {
	imageID, _ := e2eBuilderImage(t)
	reg := testenv.StartRegistry(t)
	dir := t.TempDir()
	args := offlineStandin(t, dir, imageID, "STANDIN_NONDETERMINISTIC=y\n")
	ref := reg.Host + "/ipa/irreproducible:1"
	if r := ipa(t, append(args, "--push", ref, "--plain-http", "--ipa-version", "1")...); r.code != 0 {
		t.Fatalf("build --push: exit %d\n%s", r.code, r.stderr)
	}
	r := ipa(t, "rebuild", ref, "--plain-http", "--offline", "--external", filepath.Join(dir, "ext"),
		"--buildroot-src", filepath.Join(testenv.RepoRoot(t), "builder", "testdata", "buildroot-standin"),
		"--builder-image", imageID, "-o", filepath.Join(dir, "rebuilt"), "--dl-dir", filepath.Join(dir, "dl"),
		"--ccache-dir", filepath.Join(dir, "ccache"))
	if r.code != 1 {
		t.Fatalf("rebuild of an irreproducible build: exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "MATCH  "+builder.KernelName) || !strings.Contains(r.stdout, "DIFFER "+builder.InitramfsName) {
		t.Errorf("rebuild report:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "rebuild of "+ref+" does not reproduce the published files") {
		t.Errorf("rebuild error: %s", r.stderr)
	}
}

func TestE2EBuilderDiff(t *testing.T) {
	imageID, _ := e2eBuilderImage(t)
	r := ipa(t, "builder", "diff", imageID, e2eBuilderTag(t))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "identical: ") {
		t.Errorf("diff of an image with itself: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ipa(t, "builder", "diff", "ipa-oci/debian-base:bookworm", imageID)
	if r.code != 1 || !strings.Contains(r.stdout, "usr/bin/make: only in second (file sha256:") ||
		!strings.Contains(r.stderr, "ipa-oci/debian-base:bookworm and "+imageID+" differ in ") {
		t.Errorf("diff of base and builder: exit %d\nstdout (head): %.500s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// gitRepo makes a bare repository with one commit on master (fixed dates) and returns its URL.
func gitRepo(t *testing.T, bare string) string {
	t.Helper()
	work := bare + ".work"
	writeFile(t, filepath.Join(work, "README"), "ipa\n")
	env := append(os.Environ(), "GIT_AUTHOR_DATE=1700000000 +0000", "GIT_COMMITTER_DATE=1700000000 +0000",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	for _, args := range [][]string{{"-C", work, "init", "-q", "-b", "master"}, {"-C", work, "add", "."},
		{"-C", work, "commit", "-q", "-m", "initial"}, {"clone", "-q", "--bare", work, bare}} {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return "file://" + bare
}

// initramfsFile extracts one file from an xz-compressed newc initramfs (xz and cpio).
func initramfsFile(t *testing.T, initramfs, name string) string {
	t.Helper()
	cmd := exec.Command("bash", "-o", "pipefail", "-c", `xz -dc "$1" | cpio -i --quiet --to-stdout "$2"`, "x", initramfs, name)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("extract %s from %s: %v", name, initramfs, err)
	}
	return string(out)
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
