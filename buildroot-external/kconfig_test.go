package buildrootexternal

// Tests against the real Buildroot 2025.02.16 tree (buildroot_test.go finds and extracts it):
// its kconfig resolves both defconfigs, its make evaluates this tree's packages
// (printvars, external-deps, show-info), and its utils/check-package lints the tree.

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/builder"
)

// requiredPackages are the Buildroot packages the image needs: the agent, the tools it
// calls, the kernel.
var requiredPackages = []string{
	"ironic-python-agent", "python3", "busybox", "eudev", "util-linux", "parted", "gptfdisk",
	"mdadm", "hdparm", "smartmontools", "nvme", "efibootmgr", "qemu", "lshw", "dmidecode",
	"pciutils", "ipmitool", "iproute2", "iptables", "e2fsprogs", "xfsprogs", "dosfstools", "kmod",
	"multipath-tools", "lvm2", "open-iscsi", "chrony", "coreutils", "linux",
}

// toolProviders says, for every tool board/ipa/check-tools.sh requires, which options
// provide it: a BR2_ symbol that must be y in .config, or "busybox:CONFIG_X", an applet
// enabled in the BusyBox configuration the image uses. Any one provider is enough.
var toolProviders = map[string][]string{
	"mdadm":      {"BR2_PACKAGE_MDADM"},
	"sgdisk":     {"BR2_PACKAGE_GPTFDISK_SGDISK"},
	"parted":     {"BR2_PACKAGE_PARTED"},
	"partprobe":  {"BR2_PACKAGE_PARTED"},
	"partx":      {"BR2_PACKAGE_UTIL_LINUX_PARTX"},
	"lsblk":      {"BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"blkid":      {"BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"wipefs":     {"BR2_PACKAGE_UTIL_LINUX_WIPEFS"},
	"blockdev":   {"BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"dd":         {"BR2_PACKAGE_COREUTILS"},
	"hdparm":     {"BR2_PACKAGE_HDPARM"},
	"smartctl":   {"BR2_PACKAGE_SMARTMONTOOLS"},
	"nvme":       {"BR2_PACKAGE_NVME"},
	"shred":      {"BR2_PACKAGE_COREUTILS"},
	"efibootmgr": {"BR2_PACKAGE_EFIBOOTMGR"},
	"qemu-img":   {"BR2_PACKAGE_QEMU_TOOLS"},
	"lshw":       {"BR2_PACKAGE_LSHW"},
	"dmidecode":  {"BR2_PACKAGE_DMIDECODE"},
	"lscpu":      {"BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"lspci":      {"BR2_PACKAGE_PCIUTILS"},
	"hexdump":    {"BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"ipmitool":   {"BR2_PACKAGE_IPMITOOL"},
	"multipath":  {"BR2_PACKAGE_MULTIPATH_TOOLS"},
	"multipathd": {"BR2_PACKAGE_MULTIPATH_TOOLS"},
	"iscsistart": {"BR2_PACKAGE_OPEN_ISCSI"},
	"udevadm":    {"BR2_PACKAGE_EUDEV"},
	"mount":      {"BR2_PACKAGE_UTIL_LINUX_MOUNT"},
	"chroot":     {"BR2_PACKAGE_COREUTILS"},
	"mkfs.ext4":  {"BR2_PACKAGE_E2FSPROGS"},
	"mkfs.xfs":   {"BR2_PACKAGE_XFSPROGS"},
	"mkfs.vfat":  {"BR2_PACKAGE_DOSFSTOOLS_MKFS_FAT"},
	"ip":         {"BR2_PACKAGE_IPROUTE2"},
	"chronyd":    {"BR2_PACKAGE_CHRONY"},
	"hwclock":    {"BR2_PACKAGE_UTIL_LINUX_HWCLOCK"},
	"dmesg":      {"busybox:CONFIG_DMESG", "BR2_PACKAGE_UTIL_LINUX_BINARIES"},
	"df":         {"BR2_PACKAGE_COREUTILS"},
	"iptables":   {"BR2_PACKAGE_IPTABLES"},
	"ps":         {"busybox:CONFIG_PS", "BR2_PACKAGE_PROCPS_NG"},
	"modprobe":   {"BR2_PACKAGE_KMOD_TOOLS"},
	"lsscsi":     {"BR2_PACKAGE_LSSCSI"},
	"fuser":      {"busybox:CONFIG_FUSER", "BR2_PACKAGE_PSMISC"},
}

// configured runs `make BR2_EXTERNAL=ext <defconfig>` in a fresh output directory and returns
// the Buildroot runner, the resulting .config lines and kconfig's output.
func configured(t *testing.T, tree, ext, defconfig string) (*buildroot, []string, string) {
	t.Helper()
	b := newBuildroot(t, tree)
	stdout, stderr := b.make(t, "BR2_EXTERNAL="+ext, filepath.Base(defconfig))
	cfg, err := os.ReadFile(filepath.Join(b.out, ".config"))
	if err != nil {
		t.Fatal(err)
	}
	return b, strings.Split(string(cfg), "\n"), stdout + stderr
}

func archOf(defconfig string) string {
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(defconfig), "ipa_"), "_defconfig")
}

// configValues maps each symbol of .config lines to its value ("n" for "is not set").
func configValues(lines []string) map[string]string {
	vals := map[string]string{}
	for _, l := range lines {
		if m := symbolLine.FindStringSubmatch(l); m != nil {
			v := m[2]
			if strings.HasSuffix(l, " is not set") {
				v = "n"
			}
			vals[m[1]] = v
		}
	}
	return vals
}

func qstrip(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, `"`, "")) }

// TestBuildrootDefconfigKeepsEveryLine runs the real Buildroot kconfig (`make
// ipa_<arch>_defconfig`) and requires every BR2_ line of the defconfig, and every
// "# BR2_... is not set" line, to be in the resulting .config byte for byte. kconfig writes
// string values as given: $(BR2_EXTERNAL_IPA_PATH) stays unexpanded in .config (make expands
// it when it reads .config; TestBuildrootImage checks that expansion), so the lines compare
// verbatim. Also: kconfig printed no warning (a symbol set twice), no legacy option is set,
// and every option this tree's Config.in files select is y.
func TestBuildrootDefconfigKeepsEveryLine(t *testing.T) {
	tree := buildrootTree(t)
	ext, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	selects := ownSelects(t)
	for _, dc := range defconfigs(t) {
		t.Run(archOf(dc), func(t *testing.T) {
			t.Parallel()
			_, cfg, out := configured(t, tree, ext, dc)
			have := map[string]bool{}
			for _, l := range cfg {
				have[l] = true
			}
			vals := configValues(cfg)
			b, err := os.ReadFile(dc)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i, l := range strings.Split(string(b), "\n") {
				if !strings.HasPrefix(l, "BR2_") && !strings.HasPrefix(l, "# BR2_") {
					if strings.Contains(l, "BR2_") && !strings.HasPrefix(l, "#") {
						t.Errorf("%s:%d: %q is not a BR2_ line kconfig reads as written", dc, i+1, l)
					}
					continue
				}
				n++
				if have[l] {
					continue
				}
				m := symbolLine.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("%s:%d: %q is not a defconfig line", dc, i+1, l)
					continue
				}
				got, ok := vals[m[1]]
				switch {
				case !ok:
					t.Errorf("%s:%d: %s dropped by kconfig: .config does not have %s at all (unknown symbol, or a dependency is not met)", dc, i+1, l, m[1])
				case got == "n":
					t.Errorf("%s:%d: %s dropped by kconfig: .config has it not set (a dependency is not met)", dc, i+1, l)
				default:
					t.Errorf("%s:%d: %s changed by kconfig: .config has %s=%s", dc, i+1, l, m[1], got)
				}
			}
			if n < 50 {
				t.Errorf("%s: only %d BR2_ lines found", dc, n)
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(strings.ToLower(l), "warning") {
					t.Errorf("kconfig: %s", l)
				}
			}
			if vals["BR2_LEGACY"] == "y" {
				t.Errorf("%s sets a legacy option (BR2_LEGACY=y in .config): Buildroot refuses to build it", dc)
			}
			for owner, syms := range selects {
				if vals[owner] != "y" {
					continue
				}
				for _, s := range syms {
					if vals[s] != "y" {
						t.Errorf("%s selects %s, but .config has %s=%q (unknown symbol?)", owner, s, s, vals[s])
					}
				}
			}
		})
	}
}

// ownSelects maps each option of this tree's Config.in files to the symbols it selects
// unconditionally.
func ownSelects(t *testing.T) map[string][]string {
	t.Helper()
	cfgRe := regexp.MustCompile(`^\s*(?:menu)?config\s+(BR2_[A-Za-z0-9_]+)`)
	selRe := regexp.MustCompile(`^\s*select\s+(BR2_[A-Za-z0-9_]+)\s*(#.*)?$`)
	out := map[string][]string{}
	for _, p := range ownConfigIns(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		owner := ""
		for _, l := range strings.Split(string(b), "\n") {
			if m := cfgRe.FindStringSubmatch(l); m != nil {
				owner = m[1]
			} else if m := selRe.FindStringSubmatch(l); m != nil && owner != "" {
				out[owner] = append(out[owner], m[1])
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no select found in this tree's Config.in files")
	}
	return out
}

// TestConfigInRefersToBuildrootSymbols checks every BR2_ symbol this tree's Config.in files
// select, depend on or test exists in Buildroot 2025.02.16 (its Config.in files, not the
// legacy ones) or in this tree. A select of an unknown symbol is silently ignored by kconfig.
func TestConfigInRefersToBuildrootSymbols(t *testing.T) {
	tree := buildrootTree(t)
	def := regexp.MustCompile(`(?m)^\s*(?:menu)?config\s+(BR2_[A-Za-z0-9_]+)`)
	syms := map[string]bool{}
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !strings.HasPrefix(name, "Config.in") || name == "Config.in.legacy" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			syms[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(syms) < 5000 {
		t.Fatalf("only %d symbols found in %s", len(syms), tree)
	}
	for _, p := range ownConfigIns(t) {
		b, _ := os.ReadFile(p)
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			syms[m[1]] = true
		}
	}
	ref := regexp.MustCompile(`\bBR2_[A-Za-z0-9_]+`)
	n := 0
	for _, p := range ownConfigIns(t) {
		b, _ := os.ReadFile(p)
		for i, line := range strings.Split(string(b), "\n") {
			l := strings.TrimSpace(line)
			l, _, _ = strings.Cut(l, "#")
			if !strings.HasPrefix(l, "select ") && !strings.HasPrefix(l, "depends on ") &&
				!strings.HasPrefix(l, "default ") && !strings.HasPrefix(l, "imply ") && !strings.HasPrefix(l, "if ") {
				continue
			}
			for _, s := range ref.FindAllString(l, -1) {
				n++
				if !syms[s] {
					t.Errorf("%s:%d: %q refers to %s, which Buildroot 2025.02.16 does not define", p, i+1, strings.TrimSpace(line), s)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d symbol references found in this tree's Config.in files", n)
	}
}

// printvarsAndExternalDeps runs `make printvars VARS=<names> external-deps` (one make, one
// parse of every package's .mk for both goals) and returns the variables' values and the
// file names external-deps lists.
func printvarsAndExternalDeps(t *testing.T, b *buildroot, names ...string) (map[string]string, []string) {
	t.Helper()
	out, _ := b.make(t, "printvars", "VARS="+strings.Join(names, " "), "external-deps")
	vals := map[string]string{}
	var files []string
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && slices.Contains(names, k) {
			vals[k] = strings.TrimSpace(v)
		} else if l = strings.TrimSpace(l); l != "" {
			files = append(files, l)
		}
	}
	for _, n := range names {
		if _, ok := vals[n]; !ok {
			t.Fatalf("make printvars did not print %s:\n%s", n, out)
		}
	}
	return vals, files
}

// makeName is a package's prefix in Buildroot's make variables: util-linux -> UTIL_LINUX.
func makeName(pkg string) string {
	return strings.ToUpper(strings.ReplaceAll(pkg, "-", "_"))
}

// TestBuildrootImage evaluates each configured image with the real Buildroot make (one
// `make printvars VARS=... external-deps`):
//   - packages: every package the image needs is in PACKAGES (what Buildroot builds);
//   - external-deps: `make external-deps` succeeds and lists each needed package's source
//     (what `make source` fetches);
//   - paths: the $(BR2_EXTERNAL_IPA_PATH) options expand to files of this tree;
//   - post-script-args: the post scripts get the BR2_IPA_* values as separate arguments;
//   - hash-checks: the agent's git tarball (a configurable ref) is the only download
//     Buildroot does not check against a hash file;
//   - tools: every tool board/ipa/check-tools.sh requires has an enabled provider (a
//     package, or an applet of the BusyBox configuration the image uses).
func TestBuildrootImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make printvars external-deps takes about 30 s of CPU per architecture")
	}
	tree := buildrootTree(t)
	ext, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	extReal, err := filepath.EvalSymlinks(ext)
	if err != nil {
		t.Fatal(err)
	}
	tools, full := checkToolsLists(t)
	for _, dc := range defconfigs(t) {
		t.Run(archOf(dc), func(t *testing.T) {
			t.Parallel()
			b, cfg, _ := configured(t, tree, ext, dc)
			vals := configValues(cfg)
			pathVars := []string{"BR2_ROOTFS_OVERLAY", "BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT", "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE"}
			names := append([]string{"PACKAGES", "BR_NO_CHECK_HASH_FOR", "IRONIC_PYTHON_AGENT_SOURCE",
				"BUSYBOX_KCONFIG_FILE", "BUSYBOX_KCONFIG_FRAGMENT_FILES", "BR2_ROOTFS_POST_SCRIPT_ARGS"}, pathVars...)
			for _, p := range requiredPackages {
				names = append(names, makeName(p)+"_SOURCE")
			}
			pv, files := printvarsAndExternalDeps(t, b, names...)
			def := readDefconfig(t, dc)

			t.Run("packages", func(t *testing.T) {
				pkgs := strings.Fields(pv["PACKAGES"])
				for _, p := range requiredPackages {
					if !slices.Contains(pkgs, p) {
						t.Errorf("package %s is not built (not in PACKAGES)", p)
					}
				}
			})

			t.Run("external-deps", func(t *testing.T) {
				if len(files) < len(requiredPackages) {
					t.Fatalf("make external-deps listed only %d files: %q", len(files), files)
				}
				for _, p := range requiredPackages {
					src := pv[makeName(p)+"_SOURCE"]
					if src == "" {
						t.Errorf("%s has no source file (%s_SOURCE empty)", p, makeName(p))
					} else if !slices.Contains(files, src) {
						t.Errorf("make external-deps does not list %s's source %s", p, src)
					}
				}
			})

			t.Run("paths", func(t *testing.T) {
				for _, k := range pathVars {
					raw := qstrip(def[k])
					rel, ok := strings.CutPrefix(raw, "$(BR2_EXTERNAL_IPA_PATH)/")
					if !ok {
						t.Errorf("%s = %q does not start with $(BR2_EXTERNAL_IPA_PATH)/", k, raw)
						continue
					}
					want := filepath.Join(extReal, rel)
					got := qstrip(pv[k])
					if filepath.Clean(got) != want && got != filepath.Join(ext, rel) {
						t.Errorf("%s expands to %q, want %q", k, got, want)
					}
					if _, err := os.Stat(got); err != nil {
						t.Errorf("%s: %v", k, err)
					}
				}
			})

			t.Run("post-script-args", func(t *testing.T) {
				var want []string
				for _, m := range regexp.MustCompile(`\$\((BR2_[A-Z0-9_]+)\)`).FindAllStringSubmatch(def["BR2_ROOTFS_POST_SCRIPT_ARGS"], -1) {
					v := qstrip(vals[m[1]])
					if v == "" {
						t.Errorf("%s is empty in .config", m[1])
					}
					want = append(want, v)
				}
				// Buildroot passes $(call qstrip,BR2_ROOTFS_POST_SCRIPT_ARGS) to the shell.
				got := strings.Fields(qstrip(pv["BR2_ROOTFS_POST_SCRIPT_ARGS"]))
				if len(want) < 4 || !slices.Equal(got, want) {
					t.Errorf("post scripts get arguments %q, want %q", got, want)
				}
			})

			t.Run("hash-checks", func(t *testing.T) {
				got := strings.Fields(pv["BR_NO_CHECK_HASH_FOR"])
				want := []string{pv["IRONIC_PYTHON_AGENT_SOURCE"]}
				if !slices.Equal(got, want) {
					t.Errorf("downloads not checked against a hash file: %q, want only the agent's git tarball %q", got, want)
				}
			})

			t.Run("tools", func(t *testing.T) {
				bb := busyboxConfig(t, tree, pv["BUSYBOX_KCONFIG_FILE"], pv["BUSYBOX_KCONFIG_FRAGMENT_FILES"])
				for _, tool := range tools {
					provs, ok := toolProviders[tool]
					if !ok {
						t.Errorf("check-tools.sh requires %s: add its providers to toolProviders", tool)
						continue
					}
					var enabled []string
					for _, p := range provs {
						applet, isApplet := strings.CutPrefix(p, "busybox:")
						if isApplet && slices.Contains(full, tool) {
							t.Errorf("%s must come from a full package (FULL_TOOLS in check-tools.sh), not BusyBox's %s", tool, applet)
						}
						if (isApplet && vals["BR2_PACKAGE_BUSYBOX"] == "y" && bb[applet] == "y") || (!isApplet && vals[p] == "y") {
							enabled = append(enabled, p)
						}
					}
					if len(enabled) == 0 {
						t.Errorf("nothing provides %s: none of %v is enabled", tool, provs)
					}
				}
				for tool := range toolProviders {
					if !slices.Contains(tools, tool) {
						t.Errorf("toolProviders lists %s, which check-tools.sh does not require", tool)
					}
				}
			})
		})
	}
}

// busyboxConfig reads the BusyBox configuration Buildroot uses (file relative to the tree,
// then the fragments, later lines winning) into option -> value ("n" for "is not set").
func busyboxConfig(t *testing.T, tree, file, fragments string) map[string]string {
	t.Helper()
	vals := map[string]string{}
	line := regexp.MustCompile(`^(?:# )?(CONFIG_[A-Za-z0-9_]+)(?:=(.*)| is not set)$`)
	for _, f := range append([]string{file}, strings.Fields(fragments)...) {
		if !filepath.IsAbs(f) {
			f = filepath.Join(tree, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("BusyBox configuration: %v", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if m := line.FindStringSubmatch(l); m != nil {
				v := m[2]
				if strings.HasSuffix(l, " is not set") {
					v = "n"
				}
				vals[m[1]] = v
			}
		}
	}
	if len(vals) < 100 {
		t.Fatalf("BusyBox configuration %s has only %d options", file, len(vals))
	}
	return vals
}

// stubWheelURL is the one wheel of the stub wheel list TestBuildrootShowInfo hands Buildroot.
const stubWheelURL = "https://stub.invalid/ipa-oci-test-stub/ipa_oci_test_stub-0.0.0-py3-none-any.whl"

// stubExternalTree copies this tree into a temporary directory (with kernel-config beside
// it, as in the repository) and writes, beside it, a STUB wheel list in the form `ipa-oci
// build` generates from ipa-oci.lock (builder.Lock.WriteWheelList), listing only
// stubWheelURL: the package refuses every build target (show-info included) without a wheel
// list, and a real one needs `ipa-oci lock` with network. It returns the tree and the make
// variable that names the list (IPA_OCI_WHEELS_MK=...).
func stubExternalTree(t *testing.T) (ext, wheelsVar string) {
	t.Helper()
	dir := t.TempDir()
	ext = filepath.Join(dir, "buildroot-external")
	if err := os.CopyFS(ext, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	kc, err := filepath.Abs(filepath.Join("..", "kernel-config"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(kc, filepath.Join(dir, "kernel-config")); err != nil {
		t.Fatal(err)
	}
	zeros := strings.Repeat("0", 64)
	stub := &builder.Lock{
		LockVersion:     builder.LockVersion,
		Buildroot:       builder.LockedBuildroot{TreeSHA256: zeros},
		BuilderImage:    "sha256:" + zeros,
		IPA:             &builder.ResolvedGit{Repo: "https://stub.invalid/ipa.git", Ref: "stub", Commit: strings.Repeat("1", 40), CommitTime: 1},
		Requirements:    &builder.ResolvedGit{Repo: "https://stub.invalid/requirements.git", Ref: "stub", Commit: strings.Repeat("2", 40), CommitTime: 1},
		SourceDateEpoch: 1,
		Python: &builder.LockedPython{Index: "https://stub.invalid/simple", Version: "3.12.0", Wheels: []builder.Wheel{{
			Name: "ipa-oci-test-stub", Version: "0.0.0", URL: stubWheelURL, SHA256: zeros, Arches: []string{"amd64", "arm64"},
		}}},
	}
	lists := filepath.Join(dir, "stub-wheel-list")
	if err := os.Mkdir(lists, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := stub.WriteWheelList(lists, "amd64", lists); err != nil {
		t.Fatal(err)
	}
	return ext, builder.WheelsMkVar + "=" + filepath.Join(lists, builder.WheelsMkName)
}

type showInfoDownload struct {
	Source string   `json:"source"`
	URIs   []string `json:"uris"`
}

type showInfoPackage struct {
	Type         string             `json:"type"`
	Version      string             `json:"version"`
	Licenses     string             `json:"licenses"`
	Downloads    []showInfoDownload `json:"downloads"`
	Hashes       []string           `json:"hashes"`
	Dependencies []string           `json:"dependencies"`
}

// TestBuildrootShowInfo runs `make show-info` (the SBOM input `ipa-oci build` records in
// build-info.json) on each image, with a stub wheel list (stubExternalTree): the output is
// valid JSON, every needed package is a target package, and ironic-python-agent carries the
// configured version, its git site and the listed wheel as downloads, its hash file, and a
// build dependency on every Python package its Config.in selects.
func TestBuildrootShowInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make show-info takes about 15 s of CPU per architecture")
	}
	tree := buildrootTree(t)
	ext, wheels := stubExternalTree(t)
	selects := ownSelects(t)["BR2_PACKAGE_IRONIC_PYTHON_AGENT"]
	for _, dc := range defconfigs(t) {
		t.Run(archOf(dc), func(t *testing.T) {
			t.Parallel()
			b, cfg, _ := configured(t, tree, ext, dc)
			vals := configValues(cfg)
			out, _ := b.make(t, wheels, "show-info")
			var info map[string]showInfoPackage
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("make show-info: not JSON: %v\n%.2000s", err, out)
			}
			for _, p := range requiredPackages {
				if info[p].Type != "target" {
					t.Errorf("show-info: %s is %q, want a target package", p, info[p].Type)
				}
			}
			ipa := info["ironic-python-agent"]
			if want := qstrip(vals["BR2_IPA_GIT_REF"]); ipa.Version != want {
				t.Errorf("ironic-python-agent version %q, want BR2_IPA_GIT_REF %q", ipa.Version, want)
			}
			if ipa.Licenses != "Apache-2.0" {
				t.Errorf("ironic-python-agent licenses %q", ipa.Licenses)
			}
			var uris, sources []string
			for _, d := range ipa.Downloads {
				sources = append(sources, d.Source)
				uris = append(uris, d.URIs...)
			}
			if want := "git+" + qstrip(vals["BR2_IPA_GIT_URL"]); !slices.Contains(uris, want) {
				t.Errorf("ironic-python-agent downloads %q lack %s", uris, want)
			}
			dir, file := stubWheelURL[:strings.LastIndex(stubWheelURL, "/")], stubWheelURL[strings.LastIndex(stubWheelURL, "/")+1:]
			if !slices.Contains(sources, file) || !slices.Contains(uris, dir) {
				t.Errorf("ironic-python-agent downloads (sources %q, uris %q) lack the listed wheel %s", sources, uris, stubWheelURL)
			}
			if want := filepath.Join(ext, "package/ironic-python-agent/ironic-python-agent.hash"); !slices.Contains(ipa.Hashes, want) {
				t.Errorf("ironic-python-agent hash files %q lack %s", ipa.Hashes, want)
			}
			// The generated hash file of the wheel list: Buildroot checks every wheel against it.
			wheelsHash := filepath.Join(filepath.Dir(strings.TrimPrefix(wheels, builder.WheelsMkVar+"=")), builder.WheelsHashName)
			if !slices.Contains(ipa.Hashes, wheelsHash) {
				t.Errorf("ironic-python-agent hash files %q lack the wheel list's %s", ipa.Hashes, wheelsHash)
			}
			n := 0
			for _, s := range selects {
				name, ok := strings.CutPrefix(s, "BR2_PACKAGE_PYTHON_")
				if !ok {
					continue
				}
				n++
				dep := "python-" + strings.ReplaceAll(strings.ToLower(name), "_", "-")
				if !slices.Contains(ipa.Dependencies, dep) {
					t.Errorf("ironic-python-agent selects %s but does not depend on %s (IRONIC_PYTHON_AGENT_DEPENDENCIES): %q", s, dep, ipa.Dependencies)
				}
			}
			if n < 5 {
				t.Errorf("only %d BR2_PACKAGE_PYTHON_ selects found", n)
			}
		})
	}
}

// TestCheckPackage runs Buildroot's utils/check-package (-b: br2-external rules) on every
// file of this tree it has rules for (Config.in, *.mk, *.hash, defconfigs, init and shell
// scripts through shellcheck), with the exceptions listed in .checkpackageignore (each
// explained in docs/image.md; an entry that no longer fails is reported too).
func TestCheckPackage(t *testing.T) {
	tree := buildrootTree(t)
	py, err := checkPackagePython()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Fatal("check-package needs shellcheck (Debian: apt-get install shellcheck; scripts/setup-test-env.sh installs it)")
	}
	var files []string
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, want := range []string{"Config.in", "configs/ipa_x86_64_defconfig", "package/ironic-python-agent/ironic-python-agent.mk",
		"package/ironic-python-agent/ironic-python-agent.hash", "board/ipa/post-build.sh", "board/ipa/rootfs-overlay/etc/init.d/S00ipa-early"} {
		if !slices.Contains(files, want) {
			t.Fatalf("%s not among the files to check: %q", want, files)
		}
	}
	args := append([]string{filepath.Join(tree, "utils", "check-package"), "-b", "--ignore-list", ".checkpackageignore"}, files...)
	cmd := exec.CommandContext(t.Context(), py, args...)
	cmd.Env = cleanEnv("PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("utils/check-package -b: %v\n%s", err, out)
	}
	// check-package ends with "N lines processed" and "0 warnings generated".
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	processed, clean := false, false
	for sc.Scan() {
		l := sc.Text()
		if strings.HasSuffix(l, " lines processed") && !strings.HasPrefix(l, "0 ") {
			processed = true
		}
		clean = clean || l == "0 warnings generated"
	}
	if !processed || !clean {
		t.Errorf("utils/check-package -b: unexpected output:\n%s", out)
	}
}
