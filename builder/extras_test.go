package builder

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Checks that need no engine: --make-arg, --env, make targets, the download rule, the
// write-back plan, the header kept by a save, and how a rebuild replays --make-arg/--env.

func TestCheckMakeArgs(t *testing.T) {
	if err := CheckMakeArgs("--make-arg", []string{"V=1", "BR2_PRIMARY_SITE=http://mirror.example/br", "X=", "LONG_NAME_2=a b c"}); err != nil {
		t.Fatalf("valid make arguments refused: %v", err)
	}
	for _, c := range []struct{ arg, want string }{
		{"V", `--make-arg "V": use NAME=VALUE (a make variable, e.g. V=1); make targets and options are not accepted here`},
		{"-j4", `--make-arg "-j4": use NAME=VALUE`},
		{"=1", `--make-arg "=1": "" is not a make variable name`},
		{"A B=1", `--make-arg "A B=1": "A B" is not a make variable name`},
		{"X=a\nb", `--make-arg "X": the value has a newline or NUL byte`},
		{"O=/tmp/elsewhere", "--make-arg O=...: O is not overridable: ipa-oci sets O=/ipa/output (Buildroot's output directory: set output)"},
		{"BR2_EXTERNAL=/x", "BR2_EXTERNAL is not overridable: ipa-oci sets BR2_EXTERNAL=/ipa/external (set external)"},
		{"BR2_IPA_GIT_REF=master", "BR2_IPA_GIT_REF is not overridable: ipa-oci sets it to the locked IPA commit"},
		{"IPA_OCI_WHEELS_MK=/x", "IPA_OCI_WHEELS_MK is not overridable: ipa-oci sets it to the wheel list generated from the lock"},
		{"BR2_JLEVEL=8", "BR2_JLEVEL is not overridable: ipa-oci sets it from jobs"},
		{"BR2_DL_DIR=/x", "ipa-oci sets BR2_DL_DIR=/ipa/dl (set dlDir)"},
		{"BR2_DEFCONFIG=/x", "`ipa-oci make savedefconfig` sets it"},
		{"LINUX_KCONFIG_FILE=/x", "`ipa-oci make linux-update-defconfig` sets it"},
	} {
		err := CheckMakeArgs("--make-arg", []string{"V=1", c.arg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--make-arg %q: %v, want %q", c.arg, err, c.want)
		}
	}
}

func TestCheckEnvNames(t *testing.T) {
	host := []string{"FOO=1", "EMPTY=", "HOME=/root", "http_proxy=http://p:3128", "PATH=/bin", "IPA_OCI_X=1", "GIT_CONFIG_COUNT=3"}
	if err := CheckEnvNames("--env", []string{"FOO", "EMPTY"}, host); err != nil {
		t.Fatalf("valid --env refused: %v", err)
	}
	for _, c := range []struct{ name, want string }{
		{"FOO=bar", `--env "FOO=bar": give the name of a host environment variable`},
		{"UNSET_VAR", "--env UNSET_VAR: UNSET_VAR is not set in the environment"},
		{"HOME", "--env HOME: not overridable: ipa-oci sets HOME=/tmp"},
		{"PATH", "--env PATH: not overridable: the container keeps the builder image's PATH"},
		{"IPA_OCI_X", "--env IPA_OCI_X: not overridable: ipa-oci sets the IPA_OCI_* variables"},
		{"GIT_CONFIG_COUNT", "--env GIT_CONFIG_COUNT: not overridable"},
		{"SOURCE_DATE_EPOCH", "--env SOURCE_DATE_EPOCH: not overridable"},
		{"http_proxy", "--env http_proxy: proxy variables pass into the containers anyway"},
	} {
		err := CheckEnvNames("--env", []string{c.name}, host)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--env %q: %v, want %q", c.name, err, c.want)
		}
	}
	if err := CheckEnvNames("--env", []string{"FOO", "FOO"}, host); err == nil || err.Error() != "--env FOO: given twice" {
		t.Errorf("--env twice: %v", err)
	}
}

func TestMakeTargetsAndDownloadRule(t *testing.T) {
	for _, ts := range [][]string{{"menuconfig"}, {"linux-menuconfig", "linux-update-defconfig"}, {"host-python3-rebuild"}, {"ipa_x86_64_defconfig"}, {"source"}} {
		if err := CheckMakeTargets(ts); err != nil {
			t.Errorf("targets %q refused: %v", ts, err)
		}
	}
	for _, c := range []struct {
		targets []string
		want    string
	}{
		{nil, "no make target: name one, e.g. `ipa-oci make menuconfig`"},
		{[]string{"-j4"}, `make option "-j4": only targets and VAR=VALUE are passed to make`},
		{[]string{"a;b"}, `make target "a;b": letters, digits`},
	} {
		if err := CheckMakeTargets(c.targets); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("targets %q: %v, want %q", c.targets, err, c.want)
		}
	}
	for target, downloads := range map[string]bool{"source": true, "linux-source": true, "host-python3-source": true,
		"all": false, "menuconfig": false, "linux-menuconfig": false, "legal-info": false, "sourcery": false, "linux-rebuild": false} {
		if DownloadsTarget(target) != downloads {
			t.Errorf("DownloadsTarget(%q) = %v", target, !downloads)
		}
	}
	if fetch, err := downloadSide([]string{"linux-source", "source"}); !fetch || err != nil {
		t.Errorf("download targets: fetch side %v, %v", fetch, err)
	}
	_, err := downloadSide([]string{"linux-source", "linux-menuconfig"})
	if want := "linux-source download (network on, a scratch O=) and linux-menuconfig run in the build container (network off): run them as two `ipa-oci make` commands, the download first"; err == nil || err.Error() != want {
		t.Errorf("mixed targets: %v\nwant %s", err, want)
	}
	if !needsConfig([]string{"menuconfig"}) || needsConfig([]string{"ipa_x86_64_defconfig", "menuconfig"}) || needsConfig([]string{"help"}) {
		t.Error("needsConfig: menuconfig needs a .config; a defconfig target or help does not")
	}
}

func TestKeepHeader(t *testing.T) {
	old := "# Linux 6.12 configuration (x86_64).\n# Regenerate: docs/kernel.md.\n# CONFIG_LOCALVERSION_AUTO is not set\nCONFIG_KERNEL_XZ=y\n# a comment further down\n"
	saved := "# CONFIG_LOCALVERSION_AUTO is not set\nCONFIG_KERNEL_XZ=y\nCONFIG_DUMMY=m\n"
	want := "# Linux 6.12 configuration (x86_64).\n# Regenerate: docs/kernel.md.\n" + saved
	if got := string(KeepHeader([]byte(old), []byte(saved))); got != want {
		t.Errorf("KeepHeader:\n%s\nwant:\n%s", got, want)
	}
	if got := string(KeepHeader([]byte(old), []byte(want))); got != want {
		t.Errorf("KeepHeader of a file that has the header:\n%s", got)
	}
	if got := string(KeepHeader([]byte("CONFIG_A=y\n"), []byte(saved))); got != saved {
		t.Errorf("no header to keep:\n%s", got)
	}
	if got := string(KeepHeader(nil, []byte(saved))); got != saved {
		t.Errorf("no old file:\n%s", got)
	}
}

func TestWriteBackPlan(t *testing.T) {
	dir := t.TempDir()
	ext, kc := filepath.Join(dir, "ext"), filepath.Join(dir, "kc")
	write := func(defconfig string) {
		t.Helper()
		mustWrite(t, filepath.Join(ext, "configs", "t_defconfig"), defconfig)
	}
	write("BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"$(BR2_EXTERNAL_IPA_PATH)/../kernel-config/x86_64.config\"\n")
	b := &build{o: Options{External: ext, KernelConfig: kc, Defconfig: "t_defconfig", Output: filepath.Join(dir, "out")}}
	plan, targets, err := b.planWriteBacks([]string{"menuconfig", "savedefconfig", "linux-savedefconfig"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(targets, " ") != "menuconfig savedefconfig linux-savedefconfig linux-update-defconfig" {
		t.Errorf("targets run: %q (linux-savedefconfig must be followed by linux-update-defconfig)", targets)
	}
	if len(plan) != 2 || plan[0].host != filepath.Join(ext, "configs", "t_defconfig") || plan[0].makeVar != "BR2_DEFCONFIG" ||
		plan[1].host != filepath.Join(kc, "x86_64.config") || plan[1].makeVar != "LINUX_KCONFIG_FILE" || !plan[1].seed {
		t.Errorf("plan: %+v %+v", plan[0], plan[1])
	}
	for _, c := range []struct{ defconfig, target, want string }{
		{"", "busybox-update-config", "does not set BR2_PACKAGE_BUSYBOX_CONFIG, so BusyBox uses Buildroot's own package/busybox/busybox.config, which is not yours to write: to carry a BusyBox configuration, copy that file into the external tree"},
		{"", "linux-update-defconfig", "does not set BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE, so there is no configuration file to write back"},
		{"", "uboot-update-defconfig", "ipa-oci does not know where uboot-update-defconfig saves its configuration"},
		{"BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"board/x.config\"\n", "linux-update-config", "is /ipa/buildroot/board/x.config, outside the external tree (/ipa/external) and the kernel config directory (/ipa/kernel-config)"},
		{"BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"$(BR2_EXTERNAL_IPA_PATH)/../../etc/passwd\"\n", "linux-update-config", "is /etc/passwd, outside the external tree"},
		{"BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"$(HOME)/x.config\"\n", "linux-update-config", "ipa-oci resolves only $(BR2_EXTERNAL_<NAME>_PATH) and $(TOPDIR) in it"},
	} {
		write(c.defconfig)
		if _, _, err := b.planWriteBacks([]string{c.target}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %q: %v\nwant %s", c.target, c.defconfig, err, c.want)
		}
	}
	write("BR2_PACKAGE_BUSYBOX_CONFIG=\"$(BR2_EXTERNAL_IPA_PATH)/board/ipa/busybox.config\"\n")
	if plan, _, err := b.planWriteBacks([]string{"busybox-update-config"}); err != nil || plan[0].host != filepath.Join(ext, "board", "ipa", "busybox.config") {
		t.Errorf("busybox-update-config with a config in the external tree: %v", err)
	}
	write("BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"$(BR2_EXTERNAL_IPA_PATH)/../kernel-config/x86_64.config\"\n")
	b.o.KernelConfig = ""
	if _, _, err := b.planWriteBacks([]string{"linux-update-defconfig"}); err == nil || !strings.Contains(err.Error(), "no kernel config directory is set: set kernelConfig in ipa-oci.yaml") || !errors.Is(err, ErrNeedsKernelConfig) {
		t.Errorf("kernel config without a kernel config directory: %v", err)
	}
}

func TestRebuildReplaysExtras(t *testing.T) {
	ext := t.TempDir()
	extHash, err := TreeHash(ext)
	if err != nil {
		t.Fatal(err)
	}
	bi := &BuildInfo{SchemaVersion: 1, Inputs: Inputs{External: TreeInput{SHA256: extHash}, Arch: "amd64", Defconfig: "t_defconfig",
		MakeArgs: []string{"BR2_PRIMARY_SITE=http://mirror.example"},
		Env:      []EnvInput{{Name: "MIRROR_TOKEN", SHA256: sha256Hex([]byte("s3cret"))}}}}
	o, err := RebuildOptions(bi, Options{External: ext, HostEnv: []string{"MIRROR_TOKEN=s3cret"}, MakeArgs: []string{"IGNORED=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.MakeArgs, " ") != "BR2_PRIMARY_SITE=http://mirror.example" || strings.Join(o.Env, " ") != "MIRROR_TOKEN" {
		t.Errorf("rebuild options: make args %q, env %q", o.MakeArgs, o.Env)
	}
	if _, err := RebuildOptions(bi, Options{External: ext, HostEnv: []string{}}); err == nil ||
		!strings.Contains(err.Error(), "the build passed the environment variable MIRROR_TOKEN into its containers: set MIRROR_TOKEN to the same value") {
		t.Errorf("rebuild without the variable: %v", err)
	}
	if _, err := RebuildOptions(bi, Options{External: ext, HostEnv: []string{"MIRROR_TOKEN=other"}}); err == nil ||
		!strings.Contains(err.Error(), "the build passed MIRROR_TOKEN with another value") {
		t.Errorf("rebuild with another value: %v", err)
	}
	if got := envInputs([]string{"B", "A"}, []string{"A=1", "B=2"}); len(got) != 2 || got[0].Name != "A" || got[1].SHA256 != sha256Hex([]byte("2")) {
		t.Errorf("envInputs: %+v (sorted by name, sha256 of the value)", got)
	}
}
