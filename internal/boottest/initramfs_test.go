package boottest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// TestMkTestInitramfsRelativeAndReproducible runs scripts/mk-test-initramfs.sh with a relative
// OUTPUT (the old script wrote the archive inside its staging directory, deleted it and exited
// 0) from two module trees with different mtimes: both runs must write their OUTPUT, byte for
// byte the same.
func TestMkTestInitramfsRelativeAndReproducible(t *testing.T) {
	root, err := kernelconfig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatal("/bin/busybox missing: run scripts/setup-test-env.sh (busybox-static)")
	}
	build := func(age time.Duration) []byte {
		dir := t.TempDir()
		mods := filepath.Join(dir, "modules", "lib", "modules", "6.12.0-test")
		if err := os.MkdirAll(mods, 0o755); err != nil {
			t.Fatal(err)
		}
		dep := filepath.Join(mods, "modules.dep")
		if err := os.WriteFile(dep, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		then := time.Now().Add(-age)
		for _, p := range []string{dep, mods} {
			if err := os.Chtimes(p, then, then); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "mk-test-initramfs.sh"), filepath.Join(dir, "modules"), "initramfs.cpio.gz")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mk-test-initramfs.sh: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "initramfs.cpio.gz"))
		if err != nil {
			t.Fatalf("relative OUTPUT not written: %v", err)
		}
		return b
	}
	a, b := build(time.Hour), build(48*time.Hour)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds from the same inputs differ (%d and %d bytes): mtimes leak into the archive", len(a), len(b))
	}
	if len(a) < 100<<10 {
		t.Fatalf("initramfs is only %d bytes", len(a))
	}
}
