// Package imagestest runs the ipa-oci operations on reference strings, as the CLI does (parse
// the reference into a target, then one call), for the external tests of the images packages.
// Only tests import it: the packages under test never do, so it may import them all.
package imagestest

import (
	"context"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Push pushes req to ref.
func Push(ctx context.Context, ref string, req artifact.PushRequest, opts ...store.Option) (ocispec.Descriptor, error) {
	dst, r, err := store.Parse(ref, opts...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return artifact.Push(ctx, dst, r, req)
}

// Pull pulls ref into po.Dest.
func Pull(ctx context.Context, ref string, po bootdir.PullOptions, opts ...store.Option) (*bootdir.PullResult, error) {
	src, r, err := store.Parse(ref, opts...)
	if err != nil {
		return nil, err
	}
	return bootdir.Pull(ctx, src, r, po)
}

// Inspect inspects ref.
func Inspect(ctx context.Context, ref string, opts ...store.Option) (*artifact.Inspection, error) {
	src, r, err := store.Parse(ref, opts...)
	if err != nil {
		return nil, err
	}
	return artifact.Inspect(ctx, src, r)
}

// FetchBuildInfo returns the build info attached to ref for arch.
func FetchBuildInfo(ctx context.Context, ref, arch string, opts ...store.Option) ([]byte, error) {
	src, r, err := store.Parse(ref, opts...)
	if err != nil {
		return nil, err
	}
	return artifact.FetchBuildInfo(ctx, src, r, arch)
}

// Verify verifies the pull destination dir, and against ref unless it is empty.
func Verify(ctx context.Context, dir, against string, opts ...store.Option) ([]bootdir.Mismatch, error) {
	var src bootdir.Source
	var r content.Reference
	if against != "" {
		t, ref, err := store.Parse(against, opts...)
		if err != nil {
			return nil, err
		}
		src, r = t, ref
	}
	return bootdir.Verify(ctx, dir, src, r)
}

// PushFake pushes a fresh random kernel and initramfs (initramfsSize bytes) to ref as version
// and returns the file paths.
func PushFake(t testing.TB, ref, version string, initramfsSize int, opts ...store.Option) (kernel, initramfs string) {
	t.Helper()
	dir := t.TempDir()
	kernel, initramfs = testenv.FakeKernel(t, dir, 64<<10), testenv.FakeInitramfs(t, dir, initramfsSize)
	if _, err := Push(context.Background(), ref, artifact.PushRequest{Kernel: kernel, Initramfs: initramfs, IPAVersion: version}, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return kernel, initramfs
}
