package buildrootexternal

// The real Buildroot tree the kconfig and check-package tests run against: a local tarball
// (never downloaded), extracted once into the cache directory.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/cachedir"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
)

const (
	buildrootVersion = "2025.02.16"
	buildrootTarball = "buildroot-" + buildrootVersion + ".tar.xz"
	// tarballEnv names a Buildroot tarball to use instead of the default places.
	tarballEnv = "IPA_OCI_BUILDROOT_TARBALL"
)

// knownTarballs are the sha256 of the Buildroot 2025.02.16 tarballs that hold the tree these
// tests are written against.
var knownTarballs = map[string]string{
	// git archive --prefix=buildroot-2025.02.16/ 2025.02.16 | xz (shared/buildroot/README.md)
	"2d9b55d32b4e5df5253f9fb01b88b74bc0a57a338b9d1d4ac37d145c0697ade2": "git archive of tag 2025.02.16",
	// buildroot.org's release tarball, as pinned in ipa-oci.yaml
	"15305e3d366eeaf4a5ecaf2ed42f685fd6af7fe5dbf1f62e1de5f46ee83225e2": "buildroot.org release tarball",
}

// tarballCandidates lists where the Buildroot tarball is looked for, in order: the
// environment variable, ../shared/buildroot/ beside the repository, /work/shared/buildroot/.
func tarballCandidates() ([]string, error) {
	if p := os.Getenv(tarballEnv); p != "" {
		return []string{p}, nil
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return nil, fmt.Errorf("repository root not found from %s: %w", repo, err)
	}
	return []string{
		filepath.Join(filepath.Dir(repo), "shared", "buildroot", buildrootTarball),
		filepath.Join("/work", "shared", "buildroot", buildrootTarball),
	}, nil
}

// buildrootTree returns the root of the Buildroot 2025.02.16 source tree, extracting the
// tarball into the cache directory (internal/cachedir) under buildroot-src/<sha256>/ on first use.
// Without a tarball the test fails, naming where it looked; in -short mode it is skipped.
func buildrootTree(t *testing.T) string {
	t.Helper()
	cands, err := tarballCandidates()
	if err != nil {
		t.Fatal(err)
	}
	tarball := ""
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			tarball = c
			break
		}
	}
	if tarball == "" {
		msg := fmt.Sprintf("Buildroot %s tarball not found (looked at %s); set %s to its path",
			buildrootVersion, strings.Join(cands, ", "), tarballEnv)
		if p := os.Getenv(tarballEnv); p != "" {
			msg = fmt.Sprintf("%s=%s: no such file; point it at buildroot-%s.tar.xz", tarballEnv, p, buildrootVersion)
		}
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	sum, err := fsutil.SHA256File(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := knownTarballs[sum]; !ok {
		t.Fatalf("%s has sha256 %s, which is not a known Buildroot %s tarball: these tests are written against that release", tarball, sum, buildrootVersion)
	}
	cache, err := cachedir.Dir()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := extractOnce(t.Context(), tarball, sum, filepath.Join(cache, "buildroot-src"))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// extractOnce returns parent/<sum>, extracting tarball (without its top directory) into a
// temporary directory beside it and renaming that into place, so the tree under the final
// name is always complete; a concurrent extraction that loses the rename uses the winner's.
func extractOnce(ctx context.Context, tarball, sum, parent string) (string, error) {
	dir := filepath.Join(parent, sum)
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("extract Buildroot: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".extract-"+sum[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("extract Buildroot: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left after the rename succeeded
	cmd := exec.CommandContext(ctx, "tar", "-xJf", tarball, "-C", tmp, "--strip-components=1", "--no-same-owner")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("extract %s: %w\n%s", tarball, err, out)
	}
	if _, err := os.Stat(filepath.Join(tmp, "Makefile")); err != nil {
		return "", fmt.Errorf("extract %s: no Buildroot Makefile in it: %w", tarball, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "Makefile")); serr == nil {
			return dir, nil // another test process extracted it first
		}
		return "", fmt.Errorf("extract Buildroot: %w", err)
	}
	return dir, nil
}

// buildroot runs make in a Buildroot tree with one output directory (O=) and a private
// download directory, and an environment free of the caller's BR2_* and make settings.
type buildroot struct {
	tree, out, dl string
}

func newBuildroot(t *testing.T, tree string) *buildroot {
	return &buildroot{tree: tree, out: t.TempDir(), dl: t.TempDir()}
}

// make runs `make -s -C TREE O=OUT ARGS...` and returns its stdout; it fails the test with
// stderr when make fails.
func (b *buildroot) make(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	argv := append([]string{"-s", "-C", b.tree, "O=" + b.out}, args...)
	cmd := exec.CommandContext(t.Context(), "make", argv...)
	cmd.Env = cleanEnv("BR2_DL_DIR="+b.dl, "PYTHONDONTWRITEBYTECODE=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, lastLines(e.String(), 30))
	}
	return o.String(), e.String()
}

// cleanEnv is the process environment without BR2_*, O and make's variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BR2_") || k == "O" || k == "MAKEFLAGS" || k == "MFLAGS" || k == "MAKELEVEL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkPackagePython returns a python3 that can run Buildroot's utils/check-package (it
// imports the magic and flake8 modules).
func checkPackagePython() (string, error) {
	var cands []string
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		cands = append(cands, "/usr/bin/python3")
	}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import magic, flake8").Run() == nil {
			return p, nil
		}
	}
	return "", errors.New("no python3 with the magic and flake8 modules for Buildroot's utils/check-package (Debian: apt-get install python3-magic python3-flake8; scripts/setup-test-env.sh installs them)")
}
