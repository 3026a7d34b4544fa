package builder

import (
	"context"
	"fmt"
	"testing"
)

func TestTmpDiff(t *testing.T) {
	ctx := context.Background()
	cli, err := NewDockerClient(ctx)
	if err != nil { t.Fatal(err) }
	a, err := FileManifest(ctx, cli, "ipa-oci/builder:test1")
	if err != nil { t.Fatal(err) }
	b, err := FileManifest(ctx, cli, "ipa-oci/builder:test2")
	if err != nil { t.Fatal(err) }
	fmt.Println(len(a), len(b))
	for _, d := range DiffManifests(a, b) { fmt.Println(d) }
}
