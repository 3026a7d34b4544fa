package kernelconfig

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// TestInitramfsOptions configures BuildTestInitramfs.
type TestInitramfsOptions struct {
	// ModulesDir holds lib/modules/<version>/ (BuildKernel's modulesDir). Required.
	ModulesDir string
	// Output is the initramfs file to write. Required.
	Output string
	// ExtraDir, if set, is copied over the image last (extra files for a test).
	ExtraDir string
}

// BuildTestInitramfs assembles the boot-test initramfs with scripts/mk-test-initramfs.sh:
// busybox-static, the kernel modules, the project's rootfs overlay (the real init scripts of
// the Buildroot image) and the stand-in agent kernel-config/testdata/ipa-standin-agent as
// /usr/bin/ironic-python-agent. It returns opts.Output.
func BuildTestInitramfs(ctx context.Context, opts TestInitramfsOptions) (string, error) {
	if opts.ModulesDir == "" || opts.Output == "" {
		return "", errors.New("test initramfs: ModulesDir and Output are required")
	}
	args := []string{opts.ModulesDir, opts.Output}
	if opts.ExtraDir != "" {
		args = append(args, opts.ExtraDir)
	}
	if _, err := runScript(ctx, nil, "mk-test-initramfs.sh", args...); err != nil {
		return "", fmt.Errorf("test initramfs %s: %w", opts.Output, err)
	}
	if _, err := os.Stat(opts.Output); err != nil {
		return "", fmt.Errorf("test initramfs %s not written: %w", opts.Output, err)
	}
	return opts.Output, nil
}
