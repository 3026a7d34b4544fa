// Package buildrootexternal tests the BR2_EXTERNAL tree: lint of its files (this file), and
// the real Buildroot 2025.02.16 kconfig, make and utils/check-package run on it offline
// (kconfig_test.go; a full Buildroot build needs network and an hour and does not run here).
package buildrootexternal

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var symbolLine = regexp.MustCompile(`^(?:# )?(BR2_[A-Za-z0-9_]+)(?:=(.*)| is not set)$`)

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

// checkToolsLists returns the TOOLS and FULL_TOOLS lists of board/ipa/check-tools.sh.
func checkToolsLists(t *testing.T) (tools, full []string) {
	t.Helper()
	b, err := os.ReadFile("board/ipa/check-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	list := func(name string) []string {
		m := regexp.MustCompile(`(?m)^` + name + `="([^"]*)"`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("check-tools.sh: no %s=\"...\" list", name)
		}
		return strings.Fields(string(m[1]))
	}
	tools, full = list("TOOLS"), list("FULL_TOOLS")
	if len(tools) < 30 {
		t.Fatalf("check-tools.sh: TOOLS has only %d entries", len(tools))
	}
	for _, f := range full {
		if !slices.Contains(tools, f) {
			t.Fatalf("check-tools.sh: FULL_TOOLS entry %s is not in TOOLS", f)
		}
	}
	return tools, full
}

// TestCheckTools runs board/ipa/check-tools.sh (post-build.sh's tool check) on stand-in
// target trees: it accepts one with every tool, and names each tool that is missing (fuser:
// the agent runs it on every device it erases) or that only a BusyBox applet provides where
// the agent needs the full tool (hdparm, shred, blkid).
func TestCheckTools(t *testing.T) {
	tools, full := checkToolsLists(t)
	for _, want := range []string{"fuser", "hdparm", "shred", "blkid", "modprobe", "dd"} {
		if !slices.Contains(tools, want) {
			t.Errorf("check-tools.sh does not require %s", want)
		}
	}
	pb, err := os.ReadFile("board/ipa/post-build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^"\$EXT/board/ipa/check-tools\.sh" "\$TARGET_DIR" \|\| die `).Match(pb) {
		t.Error("post-build.sh does not run check-tools.sh on the target (failing the build)")
	}
	dirs := []string{"bin", "sbin", "usr/bin", "usr/sbin"}
	// target makes a stand-in target tree: every tool as an executable file, spread over
	// the four directories, BusyBox in /bin, and the given tools as BusyBox applet symlinks
	// (as Buildroot installs them) or left out.
	target := func(t *testing.T, applets, missing []string) string {
		root := t.TempDir()
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "bin/busybox"), []byte("\x7fELF stand-in"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, tool := range tools {
			p := filepath.Join(root, dirs[i%len(dirs)], tool)
			switch {
			case slices.Contains(missing, tool):
			case slices.Contains(applets, tool):
				rel, _ := filepath.Rel(filepath.Dir(p), filepath.Join(root, "bin/busybox"))
				if err := os.Symlink(rel, p); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(p, []byte("\x7fELF stand-in"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
		return root
	}
	run := func(t *testing.T, root string) (int, string) {
		cmd := exec.Command("sh", "board/ipa/check-tools.sh", root)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}

	t.Run("complete", func(t *testing.T) {
		// BusyBox applets are fine for the tools not in FULL_TOOLS.
		if code, stderr := run(t, target(t, []string{"ps", "dmesg", "fuser", "modprobe"}, nil)); code != 0 || stderr != "" {
			t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
		}
	})
	t.Run("missing", func(t *testing.T) {
		code, stderr := run(t, target(t, nil, []string{"fuser", "hdparm"}))
		if code != 1 || !strings.Contains(stderr, "missing from the target: hdparm fuser\n") {
			t.Errorf("exit %d, stderr %q; want 1 naming hdparm and fuser", code, stderr)
		}
	})
	t.Run("busybox-applets", func(t *testing.T) {
		code, stderr := run(t, target(t, append([]string{"ps"}, full...), nil))
		if code != 1 || !strings.Contains(stderr, "only BusyBox applets, which lack options IPA uses, provide: "+strings.Join(inOrder(tools, full), " ")+" ") {
			t.Errorf("exit %d, stderr %q; want 1 naming %v", code, stderr, full)
		}
		if strings.Contains(stderr, " ps") {
			t.Errorf("stderr %q names ps, for which BusyBox's applet is enough", stderr)
		}
	})
	t.Run("full-tool-after-applet-in-path", func(t *testing.T) {
		// /bin/hdparm (first in PATH) is BusyBox's although /usr/sbin/hdparm is the real one.
		root := target(t, nil, nil)
		for _, d := range dirs {
			os.Remove(filepath.Join(root, d, "hdparm"))
		}
		if err := os.WriteFile(filepath.Join(root, "usr/sbin/hdparm"), []byte("\x7fELF stand-in"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin/hdparm")); err != nil {
			t.Fatal(err)
		}
		if code, stderr := run(t, root); code != 1 || !strings.Contains(stderr, "provide: hdparm ") {
			t.Errorf("exit %d, stderr %q; want 1 naming hdparm", code, stderr)
		}
	})
}

// inOrder returns the elements of sub in the order they have in list.
func inOrder(list, sub []string) []string {
	var out []string
	for _, s := range list {
		if slices.Contains(sub, s) {
			out = append(out, s)
		}
	}
	return out
}
