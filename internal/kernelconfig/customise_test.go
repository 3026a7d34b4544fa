package kernelconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// TestKernelConfigEditRoundTrip is docs/customise.md's "add a kernel module" on the real
// kernel-config/x86_64.config with Debian's linux-source-6.12: a scripted edit (the kernel's
// scripts/config --module DUMMY, what linux-menuconfig does by hand), saved back in
// savedefconfig style (`make savedefconfig`, the file's header kept) differs from the
// committed file by exactly the line CONFIG_DUMMY=m; built incrementally from a copy of the
// cached object directory of the committed config (scripts/kernel-build.sh build-config), the
// kernel has dummy.ko.xz in modules.dep with its own vermagic, and only a handful of objects
// were compiled. The first run builds the committed config cold (its object directory is
// cached under ${IPA_OCI_CACHE}/kernel/obj/); the result of the edit is cached by its hash.
func TestKernelConfigEditRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel build skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute) // a safety net for a cold build under load
	defer cancel()
	committed, err := ConfigPath("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	edited := filepath.Join(dir, "x86_64.config")
	if err := os.WriteFile(edited, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "obj")
	if _, err := RunScript(ctx, nil, nil, "kernel-build.sh", "config", "x86_64", obj, edited); err != nil {
		t.Fatal(err)
	}
	src, err := RunScript(ctx, nil, nil, "kernel-build.sh", "source")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(src, "scripts", "config"), "--file", filepath.Join(obj, ".config"), "--module", "DUMMY").CombinedOutput(); err != nil {
		t.Fatalf("scripts/config --module DUMMY: %v\n%s", err, out)
	}
	if _, err := RunScript(ctx, nil, nil, "kernel-build.sh", "savedefconfig", "x86_64", obj, edited); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(edited)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(saved), "\nCONFIG_DUMMY=m\n") != 1 || strings.Replace(string(saved), "CONFIG_DUMMY=m\n", "", 1) != string(orig) {
		t.Fatalf("saved config is not the committed one plus CONFIG_DUMMY=m:\n%s", testenv.DiffLines(string(orig), string(saved)))
	}

	dirOut, err := RunScript(ctx, t.Output(), nil, "kernel-build.sh", "build-config", edited, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := filepath.Glob(filepath.Join(dirOut, "modules", "lib", "modules", "*"))
	if len(mods) != 1 {
		t.Fatalf("modules directories in %s: %v", dirOut, mods)
	}
	ko := filepath.Join(mods[0], "kernel", "drivers", "net", "dummy.ko.xz")
	if _, err := os.Stat(ko); err != nil {
		t.Fatalf("the built kernel has no dummy module: %v", err)
	}
	dep, err := os.ReadFile(filepath.Join(mods[0], "modules.dep"))
	if err != nil || !regexp.MustCompile(`(?m)^kernel/drivers/net/dummy\.ko\.xz:`).Match(dep) {
		t.Errorf("modules.dep lacks dummy.ko.xz (%v)", err)
	}
	release := filepath.Base(mods[0])
	vermagic, err := exec.CommandContext(ctx, "/sbin/modinfo", "-F", "vermagic", ko).Output()
	if err != nil || !strings.HasPrefix(string(vermagic), release+" ") {
		t.Errorf("dummy.ko.xz vermagic %q (%v), want the kernel's release %s", vermagic, err, release)
	}
	if cfg, err := os.ReadFile(filepath.Join(dirOut, "config")); err != nil || !strings.Contains(string(cfg), "\nCONFIG_DUMMY=m\n") {
		t.Errorf("the built kernel's .config lacks CONFIG_DUMMY=m (%v)", err)
	}
	// Incremental: the build compiled a handful of objects, dummy.o among them, not the
	// ~1,500 of a cold build.
	log, err := os.ReadFile(filepath.Join(dirOut, "build.log"))
	if err != nil {
		t.Fatal(err)
	}
	compiled := regexp.MustCompile(`(?m)^  CC( \[M\])? +(\S+)$`).FindAllStringSubmatch(string(log), -1)
	var names []string
	for _, c := range compiled {
		names = append(names, c[2])
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", " drivers/net/dummy.o ") || len(names) > 50 {
		t.Errorf("the incremental build compiled %d objects (want dummy.o and few others): %v", len(names), names)
	}
	// The committed config's build (cached: the incremental build needed it) and its cold time.
	base, err := RunScript(ctx, nil, nil, "kernel-build.sh", "build-config", committed, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	cold, _ := os.ReadFile(filepath.Join(filepath.Dir(base), "obj", filepath.Base(base), "seconds"))
	secs, _ := os.ReadFile(filepath.Join(dirOut, "seconds"))
	same := "differs from"
	if a, b := mustReadFileT(t, filepath.Join(dirOut, "bzImage")), mustReadFileT(t, filepath.Join(base, "bzImage")); string(a) == string(b) {
		same = "is identical to"
	}
	t.Logf("incremental build: %d objects compiled (%s) in %s s; the cold build of the committed config took %s s (when it ran, under that load); the bzImage %s the committed config's",
		len(names), strings.Join(names, " "), strings.TrimSpace(string(secs)), strings.TrimSpace(string(cold)), same)
}

func mustReadFileT(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
