package main

// End-to-end tests of customising the image through the builder: `ipa-oci make` (menuconfig
// on a pseudo-terminal, savedefconfig, linux-menuconfig, linux-update-defconfig), `ipa-oci
// shell`, `ipa-oci config`, `ipa-oci clean` / `build --clean`, --env and --make-arg. They run
// the binary and the real builder image against builder/testdata/buildroot-standin (a
// stand-in for a Buildroot tree, NOT Buildroot, whose kconfig is a stand-in too); the real
// Buildroot 2025.02.16 tree's menuconfig and savedefconfig run in realbuildroot_e2e_test.go.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// standinProject is a project on the stand-in tree: ipa-oci.yaml, an external tree with a
// defconfig naming the kernel config as the real one does, a copy of the real
// kernel-config/x86_64.config, the stand-in's source already in the download cache, a lock.
type standinProject struct {
	dir, cfg, ext, defconfig, kconfig, out string
}

func newStandinProject(t *testing.T) *standinProject {
	t.Helper()
	root := testenv.RepoRoot(t)
	e2eBuilderImage(t)
	dir := t.TempDir()
	p := &standinProject{dir: dir, cfg: filepath.Join(dir, "ipa-oci.yaml"), ext: filepath.Join(dir, "buildroot-external"),
		kconfig: filepath.Join(dir, "kernel-config", "x86_64.config"), out: filepath.Join(dir, "out")}
	p.defconfig = filepath.Join(p.ext, "configs", "ipa_x86_64_defconfig")
	src := "stand-in source\n"
	writeFile(t, filepath.Join(dir, "dl", "standin", "src.tar"), src)
	writeFile(t, p.defconfig, fmt.Sprintf(`# ipa-oci stand-in test defconfig (this header survives savedefconfig).
STANDIN_SOURCE_URL="http://127.0.0.1:9/src.tar"
STANDIN_SOURCE_SHA256=%q
BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE="$(BR2_EXTERNAL_IPA_PATH)/../kernel-config/x86_64.config"
`, sha256Hex([]byte(src))))
	writeFile(t, p.kconfig, string(mustReadFile(t, filepath.Join(root, "kernel-config", "x86_64.config"))))
	writeFile(t, p.cfg, fmt.Sprintf(`buildroot:
  src: %s
external: buildroot-external
kernelConfig: kernel-config
sourceDateEpoch: 1700000000
builder:
  image: %s
output: out
dlDir: dl
ccacheDir: ccache
# The shared test engine has no bridge network.
hostNetwork: true
`, filepath.Join(root, "builder", "testdata", "buildroot-standin"), e2eBuilderTag(t)))
	if r := ipa(t, "lock", "-c", p.cfg); r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.stderr)
	}
	return p
}

// TestE2EMakeMenuconfigSaveBuild is the customisation loop on the stand-in: menuconfig on a
// terminal (the container gets a TTY of the terminal's size and follows a resize; keys reach
// the program; the terminal is restored after), savedefconfig writes the change into the
// external tree's defconfig (its header kept, nothing else changed), the next build has the
// package in its initramfs; linux-menuconfig + linux-update-defconfig do the same for the
// kernel config, on a copy of the real kernel-config/x86_64.config.
func TestE2EMakeMenuconfigSaveBuild(t *testing.T) {
	p := newStandinProject(t)
	defconfigBefore := string(mustReadFile(t, p.defconfig))

	// Without a terminal, menuconfig fails the way it does (not a terminal) with make's status.
	r := ipa(t, "make", "-c", p.cfg, "menuconfig")
	if r.code != 2 || !strings.Contains(r.stderr, "stand-in menuconfig: not a terminal") || !strings.Contains(lastLine(r.stderr), "ipa-oci: make exited with code 2 in the builder container") {
		t.Errorf("menuconfig without a terminal: exit %d\n%s", r.code, r.stderr)
	}

	term := startOnPTY(t, 100, 30, 5*time.Minute, "make", "-c", p.cfg, "menuconfig")
	term.waitFor(t, "stand-in menuconfig (NOT Buildroot) 100x30: .config")
	term.waitFor(t, "[ ] standin-extra")
	term.forget()
	term.resize(t, 120, 40)
	time.Sleep(500 * time.Millisecond) // let SIGWINCH reach ipa-oci and the resize the engine (no assertion on time)
	term.send(t, "j")
	term.waitFor(t, "stand-in menuconfig (NOT Buildroot) 120x40")
	term.send(t, "k ")
	term.waitFor(t, "> [*] standin-extra")
	term.send(t, "q")
	term.waitFor(t, "Save the configuration? [y/n]")
	term.send(t, "y")
	if code := term.wait(t); code != 0 {
		t.Fatalf("menuconfig: exit %d\n%s", code, term.text())
	}
	if !term.canonical(t) {
		t.Error("the terminal was left in raw mode")
	}
	if !strings.Contains(term.text(), "configuration written to /ipa/output/.config") {
		t.Errorf("menuconfig did not save:\n%s", term.text())
	}
	if config := string(mustReadFile(t, filepath.Join(p.out, "buildroot", ".config"))); !strings.Contains(config, "\nBR2_PACKAGE_STANDIN_EXTRA=y\n") {
		t.Errorf("O=/.config after menuconfig:\n%s", config)
	}

	r = ipa(t, "make", "-c", p.cfg, "savedefconfig")
	if r.code != 0 || !strings.Contains(r.stderr, "configuration written back") {
		t.Fatalf("savedefconfig: exit %d\n%s", r.code, r.stderr)
	}
	saved := string(mustReadFile(t, p.defconfig))
	header, rest, _ := strings.Cut(defconfigBefore, "\n")
	if saved != header+"\nBR2_PACKAGE_STANDIN_EXTRA=y\n"+rest {
		t.Errorf("saved defconfig:\n%s\nbefore:\n%s", saved, defconfigBefore)
	}

	r = ipa(t, "build", "-c", p.cfg)
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if got := initramfsFile(t, filepath.Join(p.out, builder.InitramfsName), "usr/bin/standin-extra"); got != "#!/bin/sh\necho standin-extra 1.0\n" {
		t.Errorf("the initramfs lacks the package enabled in menuconfig: %q", got)
	}

	// The kernel: linux-menuconfig sets CONFIG_DUMMY=m, linux-update-defconfig saves it into
	// the kernel config directory.
	kbefore := string(mustReadFile(t, p.kconfig))
	term = startOnPTY(t, 100, 30, 5*time.Minute, "make", "-c", p.cfg, "linux-menuconfig")
	term.waitFor(t, "[ ] Dummy net driver support (CONFIG_DUMMY)")
	term.send(t, "m")
	term.waitFor(t, "> [M] Dummy net driver support")
	term.send(t, "q")
	term.waitFor(t, "Save the configuration? [y/n]")
	term.send(t, "\r")
	if code := term.wait(t); code != 0 {
		t.Fatalf("linux-menuconfig: exit %d\n%s", code, term.text())
	}
	r = ipa(t, "make", "-c", p.cfg, "linux-update-defconfig")
	if r.code != 0 {
		t.Fatalf("linux-update-defconfig: exit %d\n%s", r.code, r.stderr)
	}
	kafter := string(mustReadFile(t, p.kconfig))
	if !strings.HasPrefix(kafter, strings.Join(strings.SplitAfter(kbefore, "\n")[:4], "")) {
		t.Errorf("the kernel config lost its header:\n%.400s", kafter)
	}
	if got, want := sortedLines(kafter), sortedLines(kbefore+"CONFIG_DUMMY=m\n"); got != want {
		t.Errorf("kernel config written back differs by more than CONFIG_DUMMY=m:\n%s", kafter)
	}
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// TestE2EShellAndConfig: `ipa-oci shell` runs a command (or stdin) in the build container and
// exits with its status; `ipa-oci config` prints what a build would use, YAML and JSON alike,
// with the lock's pins, the make arguments and the --env names (never their values).
func TestE2EShellAndConfig(t *testing.T) {
	p := newStandinProject(t)
	r := ipa(t, "shell", "-c", p.cfg, "--command", "echo phase=$IPA_OCI_PHASE pwd=$(pwd) net=$(ls /sys/class/net); type ipa-oci-make | grep -c 'O=/ipa/output'; exit 7")
	if r.code != 7 || r.stdout != "phase=build pwd=/ipa/output net=lo\n1\n" {
		t.Errorf("shell --command: exit %d\nstdout: %q\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	env := []string{"MIRROR_TOKEN=t0ken-value", "https_proxy=http://user:pw@proxy.example:3128"}
	r = ipaEnv(t, env, "config", "-c", p.cfg, "--env", "MIRROR_TOKEN", "--make-arg", "BR2_PRIMARY_SITE=http://mirror.example/br", "--json")
	if r.code != 0 {
		t.Fatalf("config --json: exit %d\n%s", r.code, r.stderr)
	}
	var c builder.Resolved
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("config --json: %v\n%s", err, r.stdout)
	}
	lock, err := builder.LoadLock(filepath.Join(p.dir, builder.LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"configFile", c.ConfigFile, p.cfg},
		{"lock.status", c.Lock.Status, "matches"},
		{"defconfig", c.Defconfig, "ipa_x86_64_defconfig"},
		{"arch", c.Arch, "amd64"},
		{"buildrootOutput", c.BuildrootOutput, filepath.Join(p.dir, "out", "buildroot")},
		{"builderImage.runs", c.BuilderImage.Runs, lock.BuilderImage},
		{"sourceDateEpoch", fmt.Sprint(c.SourceDateEpoch), "1700000000"},
		{"makeArgs", strings.Join(c.MakeArgs, " "), "BR2_PRIMARY_SITE=http://mirror.example/br"},
		{"env", strings.Join(c.Env, " "), "MIRROR_TOKEN"},
		{"make", c.Make, "make --no-print-directory -C /ipa/buildroot O=/ipa/output BR2_EXTERNAL=/ipa/external 'BR2_PRIMARY_SITE=http://mirror.example/br'"},
		{"containers[1]", c.Containers[1].Phase + " " + c.Containers[1].Network, "build none"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("config %s = %q, want %q", ck.name, ck.got, ck.want)
		}
	}
	for _, want := range []string{"MIRROR_TOKEN=(from the host environment)", "https_proxy=(from the host environment)", "IPA_OCI_PHASE=build", "SOURCE_DATE_EPOCH=1700000000"} {
		if !strings.Contains("\n"+strings.Join(c.Containers[1].Env, "\n")+"\n", "\n"+want+"\n") {
			t.Errorf("config: the build container's env lacks %q: %q", want, c.Containers[1].Env)
		}
	}
	if strings.Contains(r.stdout, "t0ken-value") || strings.Contains(r.stdout, "user:pw") {
		t.Error("config printed a value from the host environment")
	}
	y := ipaEnv(t, env, "config", "-c", p.cfg, "--env", "MIRROR_TOKEN", "--make-arg", "BR2_PRIMARY_SITE=http://mirror.example/br")
	if y.code != 0 || !strings.HasPrefix(y.stdout, "configFile: \""+p.cfg+"\"\nlockFile: ") || !strings.Contains(y.stdout, "\nlock:\n  status: \"matches\"\n") ||
		!strings.Contains(y.stdout, "\ncontainers:\n  - phase: \"fetch\"\n") {
		t.Errorf("config (YAML): exit %d\n%s", y.code, y.stdout)
	}
	// A configuration the lock no longer matches: config says so, naming the field.
	r = ipa(t, "config", "-c", p.cfg, "--defconfig", "other", "--source-date-epoch", "1800000000", "--json")
	json.Unmarshal([]byte(r.stdout), &c)
	if r.code != 0 || c.Lock.Status != "does not match" || !strings.Contains(c.Lock.Detail, "sourceDateEpoch is \"1800000000\" in "+p.cfg) {
		t.Errorf("config with a changed sourceDateEpoch: exit %d, lock %+v", r.code, c.Lock)
	}
}

// TestE2EBuildEnvMakeArgClean: --env and --make-arg are checked before anything runs,
// recorded in build-info, and replayed by rebuild (which refuses them as flags); build --clean
// and clean remove OUTPUT/buildroot and keep the download cache.
func TestE2EBuildEnvMakeArgClean(t *testing.T) {
	p := newStandinProject(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--make-arg", "V"}, `--make-arg "V": use NAME=VALUE (a make variable, e.g. V=1); make targets and options are not accepted here`},
		{[]string{"--make-arg", "O=/tmp/x"}, "--make-arg O=...: O is not overridable: ipa-oci sets O=/ipa/output (Buildroot's output directory: set output)"},
		{[]string{"--env", "HOME"}, "--env HOME: not overridable: ipa-oci sets HOME=/tmp"},
		{[]string{"--env", "IPA_OCI_E2E_UNSET"}, "--env IPA_OCI_E2E_UNSET: not overridable: ipa-oci sets the IPA_OCI_* variables"},
		{[]string{"--env", "E2E_UNSET_VARIABLE"}, "--env E2E_UNSET_VARIABLE: E2E_UNSET_VARIABLE is not set in the environment; set it (its value is passed into the builder containers)"},
	} {
		r := ipa(t, append([]string{"build", "-c", p.cfg}, c.args...)...)
		wantFailure(t, r, 1, "ipa-oci: "+c.want)
	}

	reg := testenv.StartRegistry(t)
	ref := reg.Host + "/ipa/custom:1"
	env := []string{"E2E_MIRROR_TOKEN=s3cret"}
	r := ipaEnv(t, env, "build", "-c", p.cfg, "--env", "E2E_MIRROR_TOKEN", "--make-arg", "STANDIN_MARK=one two", "--push", ref, "--plain-http", "--ipa-version", "1")
	if r.code != 0 {
		t.Fatalf("build --env --make-arg: exit %d\n%s", r.code, r.stderr)
	}
	bi, err := builder.ReadBuildInfoFile(filepath.Join(p.out, builder.BuildInfoName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bi.Inputs.MakeArgs, "|") != "STANDIN_MARK=one two" || len(bi.Inputs.Env) != 1 || bi.Inputs.Env[0].Name != "E2E_MIRROR_TOKEN" || bi.Inputs.Env[0].SHA256 != sha256Hex([]byte("s3cret")) {
		t.Errorf("build-info: makeArgs %q env %+v", bi.Inputs.MakeArgs, bi.Inputs.Env)
	}
	containerEnv := string(mustReadFile(t, filepath.Join(p.out, "buildroot", "build", "standin-env.txt")))
	if !strings.Contains(containerEnv, "E2E_MIRROR_TOKEN=s3cret\n") || !strings.Contains(containerEnv, "STANDIN_MARK=one two\n") {
		t.Errorf("the build container lacks --env/--make-arg")
	}

	// rebuild takes them from the build-info: as flags they are refused, and the --env value
	// must be the same locally.
	r = ipaEnv(t, env, "rebuild", ref, "--plain-http", "-c", p.cfg, "-o", filepath.Join(p.dir, "rebuilt"))
	if r.code != 0 || strings.Count(r.stdout, "MATCH ") != 2 {
		t.Fatalf("rebuild: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = ipaEnv(t, []string{"E2E_MIRROR_TOKEN=other"}, "rebuild", ref, "--plain-http", "-c", p.cfg, "-o", filepath.Join(p.dir, "rebuilt2"))
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "the build passed E2E_MIRROR_TOKEN with another value (sha256 "+sha256Hex([]byte("s3cret"))) {
		t.Errorf("rebuild with another --env value: exit %d\n%s", r.code, r.stderr)
	}

	// --clean and clean: O= goes, the download cache and the artifacts stay.
	marker := filepath.Join(p.out, "buildroot", "build", "marker")
	writeFile(t, marker, "x\n")
	r = ipa(t, "build", "-c", p.cfg, "--clean")
	if _, err := os.Stat(marker); r.code != 0 || err == nil {
		t.Errorf("build --clean: exit %d, marker still there: %v\n%s", r.code, err == nil, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "dl", "standin", "src.tar")); err != nil {
		t.Error("build --clean removed the download cache's content")
	}
	r = ipa(t, "clean", "-c", p.cfg)
	if r.code != 0 || r.stdout != "removed "+filepath.Join(p.out, "buildroot")+"\n" {
		t.Errorf("clean: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(p.out, builder.KernelName)); err != nil {
		t.Error("clean removed the last build's artifacts")
	}
}

// TestE2ERebuildFlags: rebuild's help lists only the flags it uses; the ones it would replace
// with the recorded values are refused, naming what it replays.
func TestE2ERebuildFlags(t *testing.T) {
	help := mustOK(t, "rebuild", "--help")
	for _, flag := range []string{"--ipa-ref", "--ipa-repo", "--requirements-ref", "--requirements-repo", "--defconfig",
		"--buildroot-url", "--buildroot-sha256", "--buildroot-version", "--source-date-epoch", "--legal-info", "--python-index",
		"--lock", "--make-arg", "--env", "--update-lock", "--push", "--clean"} {
		if strings.Contains(help, flag+" ") {
			t.Errorf("rebuild --help lists %s, which rebuild takes from the build-info", flag)
		}
	}
	for _, flag := range []string{"--external", "--kernel-config", "--buildroot-src", "--arch", "--output", "--builder-image", "--offline"} {
		if !strings.Contains(help, flag+" ") {
			t.Errorf("rebuild --help lacks %s", flag)
		}
	}
	r := ipa(t, "rebuild", "127.0.0.1:9/ipa/x:1", "--ipa-ref", "master")
	wantFailure(t, r, 1, "ipa-oci: rebuild: --ipa-ref cannot be set: a rebuild replays ipa.ref from the build-info (to build other inputs, use `ipa-oci build`)")
	r = ipa(t, "rebuild", "127.0.0.1:9/ipa/x:1", "--defconfig", "other", "--make-arg", "V=1")
	wantFailure(t, r, 1, "ipa-oci: rebuild: --defconfig cannot be set: a rebuild replays defconfig from the build-info (to build other inputs, use `ipa-oci build`)")
}

// TestE2EErrorsNameTheConfigFile: with -c ipa-oci.local.yaml, a builder pin that does not
// match names that file (not ipa-oci.yaml), as does a lock that no longer matches it.
func TestE2EErrorsNameTheConfigFile(t *testing.T) {
	p := newStandinProject(t)
	local := filepath.Join(p.dir, "ipa-oci.local.yaml")
	writeFile(t, local, strings.Replace(string(mustReadFile(t, p.cfg)), "builder:\n", "builder:\n  id: sha256:"+strings.Repeat("1", 64)+"\n", 1))
	r := ipa(t, "build", "-c", local, "--lock", filepath.Join(p.dir, "local.lock"))
	if !strings.Contains(lastLine(r.stderr), " but "+local+" pins sha256:1111") {
		t.Errorf("pin mismatch with -c %s: exit %d\n%s", local, r.code, r.stderr)
	}
	writeFile(t, local, strings.Replace(string(mustReadFile(t, p.cfg)), "sourceDateEpoch: 1700000000", "sourceDateEpoch: 1800000000", 1))
	r = ipa(t, "make", "-c", local, "--lock", filepath.Join(p.dir, builder.LockFileName), "menuconfig")
	wantOneLineError(t, "changed sourceDateEpoch", r, filepath.Join(p.dir, builder.LockFileName)+` does not match the configuration: sourceDateEpoch is "1800000000" in `+local+" (or its flag)")
}
