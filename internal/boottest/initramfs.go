package boottest

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// TestInitramfsOptions configures BuildTestInitramfs.
type TestInitramfsOptions struct {
	// ModulesDir holds lib/modules/<version>/ (BuildKernel's modulesDir). Required.
	ModulesDir string
	// Output is the initramfs file to write. Required.
	Output string
	// ExtraDir, if set, is copied over the image last (extra files for a test).
	ExtraDir string
	// Busybox is the busybox-static binary to install (default /bin/busybox, the host's).
	// A foreign-arch binary (FetchArm64Busybox) is checked without running it; its applet
	// list then comes from the host's /bin/busybox, which must be the same version.
	Busybox string
	// BaseRoot, if set, is a root tree the image starts from instead of the stand-in agent
	// (the Ironic acceptance test's Debian ironic-python-agent tree).
	BaseRoot string
	// Compress is "gzip" (default) or "zstd".
	Compress string
}

// BuildTestInitramfs assembles the boot-test initramfs with scripts/mk-test-initramfs.sh:
// busybox-static, the kernel modules, the project's rootfs overlay (the real init scripts of
// the Buildroot image) and the stand-in agent internal/boottest/testdata/ipa-standin-agent as
// /usr/bin/ironic-python-agent. It returns opts.Output.
func BuildTestInitramfs(ctx context.Context, opts TestInitramfsOptions) (string, error) {
	if opts.ModulesDir == "" || opts.Output == "" {
		return "", errors.New("test initramfs: ModulesDir and Output are required")
	}
	args := []string{opts.ModulesDir, opts.Output}
	if opts.ExtraDir != "" {
		args = append(args, opts.ExtraDir)
	}
	var env []string
	if opts.Busybox != "" {
		env = append(env, "BUSYBOX="+opts.Busybox)
	}
	if opts.BaseRoot != "" {
		env = append(env, "BASE_ROOT="+opts.BaseRoot)
	}
	if opts.Compress != "" {
		env = append(env, "COMPRESS="+opts.Compress)
	}
	if _, err := kernelconfig.RunScript(ctx, nil, env, "mk-test-initramfs.sh", args...); err != nil {
		return "", fmt.Errorf("test initramfs %s: %w", opts.Output, err)
	}
	if _, err := os.Stat(opts.Output); err != nil {
		return "", fmt.Errorf("test initramfs %s not written: %w", opts.Output, err)
	}
	return opts.Output, nil
}

// FetchArm64Busybox returns Debian's busybox-static for arm64, fetched once with
// scripts/fetch-arm64-busybox.sh (apt-get download busybox-static:arm64, adding the arm64
// dpkg architecture if needed) and cached under $IPA_OCI_CACHE/busybox-arm64/.
func FetchArm64Busybox(ctx context.Context) (string, error) {
	p, err := kernelconfig.RunScript(ctx, nil, nil, "fetch-arm64-busybox.sh")
	if err != nil {
		return "", fmt.Errorf("arm64 busybox-static: %w", err)
	}
	return p, nil
}
