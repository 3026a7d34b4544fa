package bootdir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// TestRollbackRefusesDamagedPrevious: rollback switches to the previous version only after
// checking its files; one modified in place (mtime reset) makes it refuse and leave the
// current version served.
func TestRollbackRefusesDamagedPrevious(t *testing.T) {
	ref := "oci:" + t.TempDir() + ":v"
	ctx := context.Background()
	dir := t.TempDir()
	imagestest.PushFake(t, ref, "v1", 1<<20)
	if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	k2, i2 := imagestest.PushFake(t, ref, "v2", 1<<20)
	if _, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir}); err != nil {
		t.Fatal(err)
	}
	prev, err := os.Readlink(filepath.Join(dir, ".ipa-oci", "amd64", "previous"))
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(dir, ".ipa-oci", "amd64", prev, servedInitramfs), 1000, true)
	_, err = bootdir.Rollback(ctx, dir, "")
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), servedInitramfs) {
		t.Fatalf("rollback to a damaged version: err = %v, want it refused naming the file", err)
	}
	testenv.AssertServes(t, dir, k2, i2)
}
