// Package buildrootexternal lints the BR2_EXTERNAL tree offline: Buildroot itself is not run
// in the test suite (it needs network and an hour), so these checks catch what can be
// checked without it.
package buildrootexternal

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var symbolLine = regexp.MustCompile(`^(?:# )?(BR2_[A-Za-z0-9_]+)(?:=(.*)| is not set)$`)

// buildrootSymbols reads testdata/buildroot-2025.02-symbols.txt plus the symbols this tree
// defines in its own Config.in files.
func buildrootSymbols(t *testing.T) map[string]bool {
	t.Helper()
	syms := map[string]bool{}
	f, err := os.Open("testdata/buildroot-2025.02-symbols.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "BR2_") {
			syms[l] = true
		}
	}
	if len(syms) < 5000 {
		t.Fatalf("symbol list has only %d entries", len(syms))
	}
	cfg := regexp.MustCompile(`(?m)^\s*(?:menu)?config\s+(BR2_[A-Za-z0-9_]+)`)
	for _, p := range ownConfigIns(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cfg.FindAllStringSubmatch(string(b), -1) {
			syms[m[1]] = true
		}
	}
	return syms
}

func ownConfigIns(t *testing.T) []string {
	t.Helper()
	files := []string{"Config.in"}
	m, _ := filepath.Glob("package/*/Config.in")
	return append(files, m...)
}

func readDefconfig(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || (strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "# BR2_")) {
			continue
		}
		m := symbolLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: not a defconfig line: %q", path, i+1, line)
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s:%d: %s set twice", path, i+1, m[1])
		}
		v := m[2]
		if strings.HasSuffix(line, " is not set") {
			v = "n"
		}
		out[m[1]] = v
	}
	return out
}

func defconfigs(t *testing.T) []string {
	m, _ := filepath.Glob("configs/*_defconfig")
	if len(m) != 2 {
		t.Fatalf("want ipa_x86_64_defconfig and ipa_aarch64_defconfig, got %v", m)
	}
	return m
}

func TestExternalDesc(t *testing.T) {
	b, err := os.ReadFile("external.desc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "name: IPA\n") {
		t.Errorf("external.desc must declare name: IPA, has:\n%s", b)
	}
}

// TestDefconfigSymbolsExist checks every BR2_ symbol of the defconfigs (set or "is not
// set") and every symbol this tree's Config.in files select or depend on against Buildroot
// 2025.02.16's Kconfig symbols.
func TestDefconfigSymbolsExist(t *testing.T) {
	syms := buildrootSymbols(t)
	for _, dc := range defconfigs(t) {
		for name := range readDefconfig(t, dc) {
			if !syms[name] {
				t.Errorf("%s: %s is not a Buildroot 2025.02 symbol", dc, name)
			}
		}
	}
	ref := regexp.MustCompile(`\bBR2_[A-Za-z0-9_]+`)
	for _, p := range ownConfigIns(t) {
		b, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(b), "\n") {
			l := strings.TrimSpace(line)
			if !strings.HasPrefix(l, "select ") && !strings.HasPrefix(l, "depends on ") {
				continue
			}
			for _, s := range ref.FindAllString(l, -1) {
				if !syms[s] {
					t.Errorf("%s: %q refers to unknown symbol %s", p, l, s)
				}
			}
		}
	}
}

// TestDefconfigContents checks what issue 4 requires of both images.
func TestDefconfigContents(t *testing.T) {
	required := []string{
		"BR2_REPRODUCIBLE", "BR2_TARGET_ROOTFS_CPIO", "BR2_TARGET_ROOTFS_CPIO_XZ", "BR2_INIT_BUSYBOX",
		"BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_EUDEV", "BR2_LINUX_KERNEL", "BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG",
		"BR2_PACKAGE_IRONIC_PYTHON_AGENT", "BR2_PACKAGE_PYTHON3",
		"BR2_PACKAGE_UTIL_LINUX", "BR2_PACKAGE_UTIL_LINUX_BINARIES", "BR2_PACKAGE_UTIL_LINUX_WIPEFS",
		"BR2_PACKAGE_PARTED", "BR2_PACKAGE_GPTFDISK_SGDISK", "BR2_PACKAGE_MDADM", "BR2_PACKAGE_LVM2",
		"BR2_PACKAGE_MULTIPATH_TOOLS", "BR2_PACKAGE_HDPARM", "BR2_PACKAGE_SMARTMONTOOLS", "BR2_PACKAGE_NVME",
		"BR2_PACKAGE_EFIBOOTMGR", "BR2_PACKAGE_QEMU_TOOLS", "BR2_PACKAGE_LSHW", "BR2_PACKAGE_DMIDECODE",
		"BR2_PACKAGE_PCIUTILS", "BR2_PACKAGE_IPMITOOL", "BR2_PACKAGE_IPROUTE2", "BR2_PACKAGE_E2FSPROGS",
		"BR2_PACKAGE_XFSPROGS", "BR2_PACKAGE_DOSFSTOOLS_MKFS_FAT", "BR2_PACKAGE_KMOD_TOOLS",
		"BR2_PACKAGE_CHRONY", "BR2_PACKAGE_OPEN_ISCSI", "BR2_PACKAGE_COREUTILS",
	}
	for _, dc := range defconfigs(t) {
		set := readDefconfig(t, dc)
		for _, s := range required {
			if set[s] != "y" {
				t.Errorf("%s: %s=y missing", dc, s)
			}
		}
		if v := set["BR2_QEMU_SYSTEM"] + set["BR2_PACKAGE_QEMU_SYSTEM"]; v == "y" {
			t.Errorf("%s: only qemu-img is wanted, not system emulation", dc)
		}
		arch, kcfg := "x86_64", "x86_64.config"
		if strings.Contains(dc, "aarch64") {
			arch, kcfg = "aarch64", "arm64.config"
		}
		if set["BR2_"+arch] != "y" {
			t.Errorf("%s: BR2_%s=y missing", dc, arch)
		}
		p := strings.Trim(set["BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE"], `"`)
		want := "$(BR2_EXTERNAL_IPA_PATH)/../kernel-config/" + kcfg
		if p != want {
			t.Errorf("%s: BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE = %q, want %q", dc, p, want)
		}
		for _, k := range []string{"BR2_ROOTFS_OVERLAY", "BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT", "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE"} {
			p := strings.ReplaceAll(strings.Trim(set[k], `"`), "$(BR2_EXTERNAL_IPA_PATH)", ".")
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: %s points at a missing file: %v", dc, k, err)
			}
		}
		args := set["BR2_ROOTFS_POST_SCRIPT_ARGS"]
		for _, opt := range []string{"BR2_IPA_GIT_URL", "BR2_IPA_GIT_REF", "BR2_IPA_REQUIREMENTS_GIT_URL", "BR2_IPA_REQUIREMENTS_GIT_REF"} {
			if !strings.Contains(args, "$("+opt+")") {
				t.Errorf("%s: BR2_ROOTFS_POST_SCRIPT_ARGS does not pass %s to the post scripts", dc, opt)
			}
		}
	}
}

// TestScripts checks shell syntax and the executable bit of the board and utility scripts.
func TestScripts(t *testing.T) {
	var files []string
	for _, pat := range []string{"board/ipa/*.sh", "utils/*.sh", "board/ipa/rootfs-overlay/etc/init.d/*",
		"board/ipa/rootfs-overlay/usr/sbin/*", "board/ipa/rootfs-overlay/usr/share/ipa/*"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	if len(files) < 8 {
		t.Fatalf("only %d scripts found", len(files))
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", f)
		}
		b, _ := os.ReadFile(f)
		sh := "sh"
		if strings.HasPrefix(string(b), "#!/usr/bin/env bash") {
			sh = "bash"
		}
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, f, err, out)
		}
	}
}

// TestInittabStartsAgentWithRespawn pins the init contract the boot tests rely on.
func TestInittabStartsAgentWithRespawn(t *testing.T) {
	b, err := os.ReadFile("board/ipa/rootfs-overlay/etc/inittab")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"::sysinit:/etc/init.d/rcS\n", "::respawn:/usr/sbin/ipa-agent-service\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("inittab lacks %q", want)
		}
	}
}
