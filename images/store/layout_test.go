package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLayoutConcurrentTags: several writers, each with its own target on one OCI layout
// directory (as separate processes pushing into it would be), tag manifests at the same time;
// index.json ends up naming every tag. (oras-go's content/oci store keeps index.json in memory
// from the moment it is opened, so there the last writer's view wins and the others' tags are
// lost; this layout re-reads index.json under a lock for each change.)
func TestLayoutConcurrentTags(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const writers, tags = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*tags)
	for w := range writers {
		dst, _, err := store.Parse("oci:" + dir + ":x")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range tags {
				raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[],"annotations":{"n":"%d-%d"}}`, ocispec.MediaTypeImageIndex, w, n))
				m := content.Blob{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, Data: raw}
				if err := dst.Tag(ctx, m, fmt.Sprintf("w%d-%d", w, n)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	src, _, err := store.Parse("oci:" + dir + ":x")
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for w := range writers {
		for n := range tags {
			if _, err := src.Resolve(ctx, fmt.Sprintf("w%d-%d", w, n)); err != nil {
				lost++
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d tags written concurrently are missing from index.json", lost, writers*tags)
	}
}
