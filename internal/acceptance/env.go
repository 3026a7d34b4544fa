// Package acceptance holds the Ironic acceptance test of ipa-oci and its helpers: a real
// Ironic 2025.1 (Debian trixie packages, all-in-one process in a chroot), a Distribution
// registry over TLS, the real ironic-python-agent in a TEST IMAGE built around the project's
// own kernel, modules and rootfs overlay, and QEMU netbooting it through iPXE — all inside a
// network namespace the test creates. The expensive trees are cached under
// the cache directory's ironic/ (internal/cachedir) by content hash.
package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ipa-oci/ipa-oci/internal/boottest"
	"github.com/ipa-oci/ipa-oci/internal/cachedir"
	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// Artifacts are the inputs of the acceptance test, built or taken from the cache.
type Artifacts struct {
	Kernel    string // the project's bzImage (kernel-config/x86_64.config)
	Initramfs string // the agent test image (zstd cpio)
	Chroot    string // the Ironic trixie chroot (used read-only, as an overlay's lower layer)
	IPAOCI    string // the ipa-oci binary under test
}

// Prepare builds (or finds in the cache) the kernel, the Ironic chroot, the agent rootfs and
// the test image, and builds ipa-oci into dir. Progress goes to logw.
func Prepare(ctx context.Context, repoRoot, dir string, logw io.Writer) (*Artifacts, error) {
	a := &Artifacts{IPAOCI: filepath.Join(dir, "ipa-oci")}
	var (
		wg                       sync.WaitGroup
		modules, agentRoot       string
		errKernel, errC, errA, e error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		a.Kernel, modules, errKernel = kernelconfig.BuildKernel(ctx, kernelconfig.WithBuildLog(logw))
	}()
	go func() { defer wg.Done(); a.Chroot, errC = testEnv(ctx, repoRoot, logw, "chroot") }()
	go func() { defer wg.Done(); agentRoot, errA = testEnv(ctx, repoRoot, logw, "agent-rootfs") }()
	build := exec.CommandContext(ctx, "go", "build", "-o", a.IPAOCI, "./cmd/ipa-oci")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		e = fmt.Errorf("go build ./cmd/ipa-oci: %w\n%s", err, out)
	}
	wg.Wait()
	for _, err := range []error{e, errKernel, errC, errA} {
		if err != nil {
			return nil, err
		}
	}
	var err error
	a.Initramfs, err = testImage(ctx, repoRoot, modules, agentRoot)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// testEnv runs scripts/ironic-test-env.sh what and returns the directory it prints.
func testEnv(ctx context.Context, repoRoot string, logw io.Writer, what string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "scripts", "ironic-test-env.sh"), what)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, logw)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ironic-test-env.sh %s: %w\n%s", what, err, tail(stderr.String(), 3000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// ImageExtraDir is the test-only addition to the test image: etc/init.d/S10udev, the
// counterpart of Buildroot's eudev init script (the project's overlay expects udev there).
func ImageExtraDir(repoRoot string) string {
	return filepath.Join(repoRoot, "internal", "acceptance", "testdata", "image-extra")
}

// testImage assembles the agent test image with scripts/mk-test-initramfs.sh (BASE_ROOT = the
// Debian agent tree, the project's modules and rootfs overlay unchanged, plus ImageExtraDir),
// cached under $IPA_OCI_CACHE/ironic/test-image-<hash>.cpio.zst. The hash covers the agent
// tree and the kernel build (their cache names are content hashes), the overlay, the extra
// files and the script.
func testImage(ctx context.Context, repoRoot, modules, agentRoot string) (string, error) {
	cache, err := cachedir.Dir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "agent=%s\nmodules=%s\n", agentRoot, modules)
	for _, p := range []string{
		filepath.Join(repoRoot, "buildroot-external", "board", "ipa", "rootfs-overlay"),
		ImageExtraDir(repoRoot),
		filepath.Join(repoRoot, "scripts", "mk-test-initramfs.sh"),
	} {
		if err := hashTree(h, p); err != nil {
			return "", fmt.Errorf("test image inputs: %w", err)
		}
	}
	out := filepath.Join(cache, "ironic", "test-image-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio.zst")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	// mk-test-initramfs.sh writes OUT.tmp.PID and renames it: never half-written under out.
	_, err = boottest.BuildTestInitramfs(ctx, boottest.TestInitramfsOptions{
		ModulesDir: modules, Output: out, ExtraDir: ImageExtraDir(repoRoot),
		BaseRoot: agentRoot, Busybox: filepath.Join(agentRoot, "usr", "bin", "busybox"), Compress: "zstd",
	})
	if err != nil {
		return "", fmt.Errorf("agent test image: %w", err)
	}
	return out, nil
}

// hashTree adds the names, modes and contents of every file under root to h, in walk order.
func hashTree(h io.Writer, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %o\n", rel, info.Mode())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
