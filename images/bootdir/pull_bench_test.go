package bootdir_test

import (
	"context"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// BenchmarkPullUpToDate measures a pull of a tag DIR already holds (64 MiB initramfs), against
// a real Distribution registry: the timer's every-few-minutes case. "stat" is the default
// check (one manifest HEAD, stat(2) of the served files against their stamps); "verify-local"
// hashes every file and re-reads the index and manifests, as the peer it is compared with.
//
//	go test -run '^$' -bench PullUpToDate -benchtime 200x ./images/bootdir/
func BenchmarkPullUpToDate(b *testing.B) {
	reg := testenv.StartRegistry(b)
	ref := reg.Host + "/ipa/agent:bench"
	imagestest.PushFake(b, ref, "v1", 64<<20)
	dir := b.TempDir()
	ctx := context.Background()
	if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir, IPXE: true}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		verify bool
	}{{"stat", false}, {"verify-local", true}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir, IPXE: true, VerifyLocal: c.verify})
				if err != nil || res.Updated {
					b.Fatalf("pull: updated=%v, %v; want up to date", res != nil && res.Updated, err)
				}
			}
		})
	}
}
