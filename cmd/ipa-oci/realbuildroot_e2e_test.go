package main

// The worked examples of docs/customise.md as the tests can run them: the real Buildroot
// 2025.02.16 tree's kconfig (menuconfig on a pseudo-terminal, utils/config, olddefconfig,
// savedefconfig) through `ipa-oci make` and `ipa-oci shell` with a copy of the real external
// tree, and the overlay examples built on the stand-in.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/internal/cachedir"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// docFiles returns the file blocks of docs/customise.md: a fenced block preceded by
// "<!-- file: PATH -->", keyed by PATH (relative to the external tree).
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	doc := string(mustReadFile(t, filepath.Join(testenv.RepoRoot(t), "docs", "customise.md")))
	re := regexp.MustCompile("(?s)<!-- file: (\\S+) -->\n```[a-z]*\n(.*?)```\n")
	files := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		files[m[1]] = m[2]
	}
	for _, want := range []string{"board/ipa/rootfs-overlay/usr/lib/python3.12/site-packages/ipa_example_hwm.py",
		"board/ipa/rootfs-overlay/usr/lib/python3.12/site-packages/ipa_example_hwm-1.0.dist-info/METADATA",
		"board/ipa/rootfs-overlay/usr/lib/python3.12/site-packages/ipa_example_hwm-1.0.dist-info/entry_points.txt",
		"package/python-ipa-example-hwm/Config.in", "package/python-ipa-example-hwm/python-ipa-example-hwm.mk",
		"package/python-ipa-example-hwm/src/pyproject.toml"} {
		if files[want] == "" {
			t.Fatalf("docs/customise.md has no file block for %s (has %d)", want, len(files))
		}
	}
	return files
}

// realBuildrootTarball is the local Buildroot 2025.02.16 tarball (never downloaded).
func realBuildrootTarball(t *testing.T) (path, sum string) {
	t.Helper()
	cands := []string{os.Getenv("IPA_OCI_BUILDROOT_TARBALL")}
	if cands[0] == "" {
		root := testenv.RepoRoot(t)
		cands = []string{filepath.Join(filepath.Dir(root), "shared", "buildroot", "buildroot-2025.02.16.tar.xz"),
			"/work/shared/buildroot/buildroot-2025.02.16.tar.xz"}
	}
	for _, c := range cands {
		f, err := os.Open(c)
		if err != nil {
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err == nil {
			return c, hex.EncodeToString(h.Sum(nil))
		}
	}
	t.Fatalf("Buildroot 2025.02.16 tarball not found (looked at %s); set IPA_OCI_BUILDROOT_TARBALL to its path", strings.Join(cands, ", "))
	return "", ""
}

// copyTree copies the regular files of src to dst, leaving out Go files (test code).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() || strings.HasSuffix(p, ".go") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, rel), string(mustReadFile(t, p)))
		return os.Chmod(filepath.Join(dst, rel), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestE2ECustomiseRealBuildroot runs docs/customise.md's configuration steps on the real
// Buildroot 2025.02.16 tree with a copy of the real buildroot-external (plus the doc's
// BR2_EXTERNAL hardware-manager package) through the binary:
//   - the real `make menuconfig` on a pseudo-terminal: it draws, Esc Esc quits, exit 0, and the
//     .config it leaves has the defconfig's symbols and the doc package's option (unset);
//   - the scripted edit with utils/config in `ipa-oci shell` (jq, a linux-firmware option, the
//     hardware manager), `ipa-oci make olddefconfig`, `ipa-oci make savedefconfig` written back
//     into the copy's defconfig (header kept, the three options in it, no BR2_DEFCONFIG);
//   - configuring from the saved defconfig gives the same .config, byte for byte;
//   - utils/check-package passes the doc's package, and printvars shows Buildroot parsed it.
func TestE2ECustomiseRealBuildroot(t *testing.T) {
	root := testenv.RepoRoot(t)
	imageID, _ := e2eBuilderImage(t)
	tarball, sum := realBuildrootTarball(t)
	dir := t.TempDir()
	ext := filepath.Join(dir, "buildroot-external")
	copyTree(t, filepath.Join(root, "buildroot-external"), ext)
	copyTree(t, filepath.Join(root, "kernel-config"), filepath.Join(dir, "kernel-config"))
	files := docFiles(t)
	for p, content := range files {
		if strings.HasPrefix(p, "package/") {
			writeFile(t, filepath.Join(ext, p), content)
		}
	}
	writeFile(t, filepath.Join(ext, "package/python-ipa-example-hwm/src/ipa_example_hwm.py"),
		files["board/ipa/rootfs-overlay/usr/lib/python3.12/site-packages/ipa_example_hwm.py"])
	configIn := string(mustReadFile(t, filepath.Join(ext, "Config.in")))
	configIn = strings.Replace(configIn, "\nendmenu", "\nsource \"$BR2_EXTERNAL_IPA_PATH/package/python-ipa-example-hwm/Config.in\"\n\nendmenu", 1)
	writeFile(t, filepath.Join(ext, "Config.in"), configIn)
	defconfig := filepath.Join(ext, "configs", "ipa_x86_64_defconfig")
	before := string(mustReadFile(t, defconfig))

	cfg := filepath.Join(dir, "ipa-oci.yaml")
	writeFile(t, cfg, fmt.Sprintf(`buildroot:
  version: "2025.02.16"
  url: file://%s
  sha256: %s
external: buildroot-external
kernelConfig: kernel-config
sourceDateEpoch: 1700000000
builder:
  image: %s
output: out
dlDir: dl
ccacheDir: ccache
hostNetwork: true
`, tarball, sum, imageID))
	if r := ipa(t, "lock", "-c", cfg); r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.stderr)
	}
	dotConfig := filepath.Join(dir, "out", "buildroot", ".config")

	start := time.Now()
	term := startOnPTY(t, 100, 30, 10*time.Minute, "make", "-c", cfg, "menuconfig")
	term.waitFor(t, "Buildroot 2025.02.16 Configuration")
	t.Logf("real menuconfig drawn %.1f s after the start (defconfig, mconf compiled)", time.Since(start).Seconds())
	term.waitFor(t, "Exit >")
	term.forget()
	term.send(t, "\x1b\x1b")
	time.Sleep(2 * time.Second) // mconf reads Esc Esc as one key only after a pause; answer a save dialog if one shows
	if strings.Contains(term.plain(), "Do you wish to save your new configuration?") {
		term.send(t, "\r")
	}
	term.waitFor(t, "*** End of the configuration.")
	if code := term.wait(t); code != 0 {
		t.Fatalf("real menuconfig: exit %d\n%s", code, term.text())
	}
	if !term.canonical(t) {
		t.Error("the terminal was left in raw mode")
	}
	menuConfig := string(mustReadFile(t, dotConfig))
	for _, want := range []string{"\nBR2_x86_64=y\n", "\nBR2_PACKAGE_IRONIC_PYTHON_AGENT=y\n", "\n# BR2_PACKAGE_PYTHON_IPA_EXAMPLE_HWM is not set\n",
		"\nBR2_DEFCONFIG=\"/ipa/external/configs/ipa_x86_64_defconfig\"\n"} {
		if !strings.Contains(menuConfig, want) {
			t.Errorf(".config after menuconfig lacks %q", strings.TrimSpace(want))
		}
	}

	// The scripted edit, as docs/customise.md shows it.
	r := ipa(t, "shell", "-c", cfg, "--command",
		"/ipa/buildroot/utils/config --file /ipa/output/.config --enable BR2_PACKAGE_JQ --enable BR2_PACKAGE_LINUX_FIRMWARE_CXGB4_T6 --enable BR2_PACKAGE_PYTHON_IPA_EXAMPLE_HWM")
	if r.code != 0 {
		t.Fatalf("utils/config: exit %d\n%s", r.code, r.stderr)
	}
	if r = ipa(t, "make", "-c", cfg, "olddefconfig"); r.code != 0 {
		t.Fatalf("olddefconfig: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := string(mustReadFile(t, dotConfig))
	for _, sym := range []string{"BR2_PACKAGE_JQ", "BR2_PACKAGE_LINUX_FIRMWARE_CXGB4_T6", "BR2_PACKAGE_PYTHON_IPA_EXAMPLE_HWM"} {
		if !strings.Contains(want, "\n"+sym+"=y\n") {
			t.Errorf("olddefconfig dropped %s", sym)
		}
	}
	if r = ipa(t, "make", "-c", cfg, "savedefconfig"); r.code != 0 || !strings.Contains(r.stderr, "configuration written back") {
		t.Fatalf("savedefconfig: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	saved := string(mustReadFile(t, defconfig))
	header := strings.Join(strings.SplitAfter(before, "\n")[:3], "")
	if !strings.HasPrefix(saved, header) || strings.Contains(saved, "BR2_DEFCONFIG") {
		t.Errorf("saved defconfig lost its header or kept BR2_DEFCONFIG:\n%s", saved)
	}
	for _, sym := range []string{"BR2_PACKAGE_JQ", "BR2_PACKAGE_LINUX_FIRMWARE_CXGB4_T6", "BR2_PACKAGE_PYTHON_IPA_EXAMPLE_HWM"} {
		if !strings.Contains(saved, "\n"+sym+"=y\n") {
			t.Errorf("saved defconfig lacks %s=y", sym)
		}
	}
	t.Logf("savedefconfig: %d lines (the committed defconfig has %d)", strings.Count(saved, "\n"), strings.Count(before, "\n"))

	// Round trip: configuring from the saved defconfig gives the same .config.
	if r = ipa(t, "make", "-c", cfg, "ipa_x86_64_defconfig"); r.code != 0 {
		t.Fatalf("defconfig from the saved file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := string(mustReadFile(t, dotConfig)); got != want {
		t.Errorf("the saved defconfig does not give back the .config it was saved from:\n%s", testenv.DiffLines(want, got))
	}

	// The doc's package: Buildroot's check-package (on the host, which has the Python modules
	// it needs: scripts/setup-test-env.sh), and Buildroot's make parses it.
	cache, err := cachedir.Dir()
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(cache, "buildroot", sum, "tree")
	lint := exec.Command("/usr/bin/python3", filepath.Join(tree, "utils", "check-package"), "-b",
		"package/python-ipa-example-hwm/Config.in", "package/python-ipa-example-hwm/python-ipa-example-hwm.mk")
	lint.Dir = ext
	if out, err := lint.CombinedOutput(); err != nil || !strings.Contains(string(out), "\n0 warnings generated\n") {
		t.Errorf("check-package on the doc's package: %v\n%s", err, out)
	}
	r = ipa(t, "make", "-c", cfg, "-s", "printvars", "VARS=PYTHON_IPA_EXAMPLE_HWM_SITE_METHOD PYTHON_IPA_EXAMPLE_HWM_SETUP_TYPE")
	if r.code != 0 || !strings.Contains(r.stdout, "PYTHON_IPA_EXAMPLE_HWM_SITE_METHOD=local\n") || !strings.Contains(r.stdout, "PYTHON_IPA_EXAMPLE_HWM_SETUP_TYPE=setuptools\n") {
		t.Errorf("printvars of the doc's package: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestE2ECustomiseOverlay builds the stand-in with docs/customise.md's overlay examples in the
// external tree's board/ipa/rootfs-overlay (BR2_ROOTFS_OVERLAY as the real defconfig sets it):
// the firmware blob and the hardware manager's files land in the initramfs, and Python's
// importlib.metadata over the image's site-packages finds the manager's entry point the way
// stevedore does and loads the class. Its methods run against a minimal stand-in of the
// agent's hardware module (HardwareManager, HardwareSupport), since the real agent cannot be
// installed here: this proves the packaging and the module, not the agent running it.
func TestE2ECustomiseOverlay(t *testing.T) {
	p := newStandinProject(t)
	overlay := filepath.Join(p.ext, "board", "ipa", "rootfs-overlay")
	for path, content := range docFiles(t) {
		if strings.HasPrefix(path, "board/") {
			writeFile(t, filepath.Join(p.ext, path), content)
		}
	}
	blob := string(payload(42, 4096))
	writeFile(t, filepath.Join(overlay, "lib", "firmware", "example", "example-nic.bin"), blob)
	writeFile(t, p.defconfig, string(mustReadFile(t, p.defconfig))+"BR2_ROOTFS_OVERLAY=\"$(BR2_EXTERNAL_IPA_PATH)/board/ipa/rootfs-overlay\"\n")
	if r := ipa(t, "build", "-c", p.cfg); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	initramfs := filepath.Join(p.out, builder.InitramfsName)
	if got := initramfsFile(t, initramfs, "lib/firmware/example/example-nic.bin"); got != blob {
		t.Errorf("firmware blob in the initramfs: %d bytes, want the %d of the overlay", len(got), len(blob))
	}
	root := filepath.Join(p.dir, "initramfs")
	os.Mkdir(root, 0o755)
	x := exec.Command("bash", "-o", "pipefail", "-c", `xz -dc "$1" | cpio -idm --quiet`, "x", initramfs)
	x.Dir = root
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("unpack the initramfs: %v\n%s", err, out)
	}
	standIn := filepath.Join(p.dir, "agent-standin", "ironic_python_agent")
	writeFile(t, filepath.Join(standIn, "__init__.py"), "")
	writeFile(t, filepath.Join(standIn, "hardware.py"), `# Stand-in of ironic_python_agent.hardware (NOT the agent): the two names a manager uses.
class HardwareSupport:
    NONE, GENERIC, MAINLINE, SERVICE_PROVIDER = 0, 1, 2, 3

class HardwareManager:
    pass
`)
	check := `
import importlib.metadata, sys
eps = importlib.metadata.entry_points(group="ironic_python_agent.hardware_managers")
print("entry points:", sorted((e.name, e.value) for e in eps))
(ep,) = eps
cls = ep.load()
m = cls()
print("support:", m.evaluate_hardware_support())
print("steps:", [s["step"] for s in m.get_clean_steps({"uuid": "n1"}, [])])
print(m.example_check({"uuid": "n1"}, []))
`
	cmd := exec.Command("python3", "-I", "-c", "import sys; sys.path[:0] = sys.argv[1:3]; exec(sys.argv[3])",
		filepath.Join(root, "usr", "lib", "python3.12", "site-packages"), filepath.Dir(standIn), check)
	out, err := cmd.CombinedOutput()
	want := "entry points: [('example', 'ipa_example_hwm:ExampleHardwareManager')]\nsupport: 1\nsteps: ['example_check']\nexample_check ran on node n1\n"
	if err != nil || string(out) != want {
		t.Errorf("the hardware manager from the initramfs: %v\n%s\nwant:\n%s", err, out, want)
	}
}
