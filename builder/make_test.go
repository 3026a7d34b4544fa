package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// `ipa-oci make` and `ipa-oci shell` against the stand-in tree (testdata/buildroot-standin,
// NOT Buildroot) in the real builder image. The terminal cases (menuconfig under a pty) run
// through the binary in cmd/ipa-oci.

// shellOut runs Shell with command and returns its stdout.
func shellOut(t *testing.T, o Options, command string) string {
	t.Helper()
	var out, errb bytes.Buffer
	err := Shell(context.Background(), o, ShellOptions{Command: command, Stdio: Stdio{Stdout: &out, Stderr: &errb}})
	if err != nil {
		t.Fatalf("shell %q: %v\nstderr: %s", command, err, errb.String())
	}
	return out.String()
}

// envSubset keeps the variables a container gets from ipa-oci (and the host secret, which
// must be absent), dropping what make and bash add.
var envSubset = regexp.MustCompile(`^(HOME|LANG|LC_ALL|TERM|SOURCE_DATE_EPOCH|BR2_DL_DIR|BR_CACHE_DIR|IPA_OCI_[A-Z_]*|GIT_CONFIG_[A-Z_0-9]*|[a-z_]*proxy|[A-Z_]*PROXY|STANDIN_MIRROR_TOKEN)=`)

func filterEnv(env string) []string {
	var out []string
	for _, l := range strings.Split(env, "\n") {
		if envSubset.MatchString(l) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// TestShellIsTheBuildContainer runs a build, then `ipa-oci shell` with the same options: the
// external tree's report.sh (mounts and their modes, where it may write, capabilities,
// no-new-privileges, pids limit) prints exactly what it printed in the build phase, the
// environment ipa-oci sets is the same (no host secret), there is no network interface but
// lo, the working directory is O= and ipa-oci-make is Buildroot's make as the build runs it:
// saving into the read-only external tree fails there.
func TestShellIsTheBuildContainer(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(f.dir, "out")
	o := f.options(out)
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatalf("build: %v\n%s", err, f.logBuf)
	}
	var buildReport []string
	for _, l := range strings.Split(string(mustRead(t, filepath.Join(out, BuildLogName))), "\n") {
		if r, ok := strings.CutPrefix(l, "[build] "); ok && regexp.MustCompile(`^(MOUNT|WRITE|CAPS|NNP|PIDS) build `).MatchString(r) {
			buildReport = append(buildReport, r)
		}
	}
	if len(buildReport) < 15 {
		t.Fatalf("build phase report has %d lines", len(buildReport))
	}
	got := shellOut(t, o, "/ipa/external/report.sh; echo NET $(ls /sys/class/net); echo PWD $(pwd); echo ENV; env")
	report, env, _ := strings.Cut(got, "\nENV\n")
	lines := strings.Split(strings.TrimSpace(report), "\n")
	if strings.Join(lines[:len(lines)-2], "\n") != strings.Join(buildReport, "\n") {
		t.Errorf("shell container report:\n%s\nbuild phase report:\n%s", strings.Join(lines, "\n"), strings.Join(buildReport, "\n"))
	}
	if lines[len(lines)-2] != "NET lo" || lines[len(lines)-1] != "PWD "+ContainerOutput {
		t.Errorf("shell network/working directory: %q", lines[len(lines)-2:])
	}
	buildEnv := filterEnv(string(mustRead(t, filepath.Join(out, "buildroot", "build", "standin-env.txt"))))
	if shellEnv := filterEnv(env); strings.Join(shellEnv, "\n") != strings.Join(buildEnv, "\n") || len(shellEnv) < 15 {
		t.Errorf("shell environment:\n%s\nbuild phase environment:\n%s", strings.Join(shellEnv, "\n"), strings.Join(buildEnv, "\n"))
	}
	if strings.Contains(env, "hunter2") {
		t.Error("the host secret reached the shell")
	}

	var errb bytes.Buffer
	err := Shell(context.Background(), o, ShellOptions{Command: "ipa-oci-make savedefconfig", Stdio: Stdio{Stdout: &errb, Stderr: &errb}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(errb.String(), "Error while saving defconfig to: /ipa/external/configs/test_defconfig (Read-only file system)") {
		t.Errorf("savedefconfig inside the shell: %v\n%s", err, errb.String())
	}
	assertNoContainers(t, out)
}

// TestMakeWritesBack runs `ipa-oci make` targets that save a configuration: savedefconfig and
// linux-update-defconfig save into the scratch directory and ipa-oci copies the file into the
// external tree and the kernel config directory (header kept, the kernel config with the time
// stamp Buildroot gives it); an unchanged configuration leaves the file as it is.
func TestMakeWritesBack(t *testing.T) {
	f := newFixture(t, `BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE="$(BR2_EXTERNAL_IPA_PATH)/../kernel-config/x86_64.config"`)
	o := f.options(filepath.Join(f.dir, "out"))
	o.KernelConfig = filepath.Join(f.dir, "kernel-config")
	kconfig := filepath.Join(o.KernelConfig, "x86_64.config")
	mustWrite(t, kconfig, "# Kernel configuration of the test (header)\nCONFIG_E1000=m\n# CONFIG_IPV6 is not set\n")
	old := time.Unix(1600000000, 0)
	os.Chtimes(kconfig, old, old)
	defconfig := filepath.Join(f.external, "configs", "test_defconfig")
	mustWrite(t, defconfig, "# test defconfig (header)\n"+string(mustRead(t, defconfig))+"\n")
	before := string(mustRead(t, defconfig))
	ctx := context.Background()
	make := func(targets ...string) *MakeResult {
		t.Helper()
		var out bytes.Buffer
		res, err := Make(ctx, o, MakeOptions{Targets: targets, Stdio: Stdio{Stdout: &out, Stderr: &out}})
		if err != nil {
			t.Fatalf("make %s: %v\n%s", targets, err, out.String())
		}
		return res
	}

	res := make("savedefconfig")
	if res.Phase != "build" || len(res.Written) != 1 || res.Written[0].Changed || res.Written[0].Path != defconfig {
		t.Errorf("savedefconfig of an unchanged configuration: %+v", res)
	}
	if got := string(mustRead(t, defconfig)); got != before {
		t.Errorf("unchanged savedefconfig rewrote the defconfig:\n%s", got)
	}
	// A configuration change in O= (as menuconfig makes it), saved back.
	shellOut(t, o, "sed -i 's/^# BR2_PACKAGE_STANDIN_EXTRA is not set$/BR2_PACKAGE_STANDIN_EXTRA=y/' .config")
	res = make("savedefconfig")
	after := string(mustRead(t, defconfig))
	if !res.Written[0].Changed || !strings.HasPrefix(after, "# test defconfig (header)\nBR2_PACKAGE_STANDIN_EXTRA=y\n") ||
		strings.Replace(after, "BR2_PACKAGE_STANDIN_EXTRA=y\n", "", 1) != before || strings.Contains(after, "BR2_DEFCONFIG") {
		t.Errorf("saved defconfig:\n%s\nbefore:\n%s", after, before)
	}

	res = make("linux-update-defconfig")
	if len(res.Written) != 1 || res.Written[0].Changed || res.Written[0].Path != kconfig {
		t.Errorf("linux-update-defconfig, unchanged: %+v", res)
	}
	shellOut(t, o, "sed -i 's/^# CONFIG_DUMMY is not set$/CONFIG_DUMMY=m/' build/linux-standin/.config")
	make("linux-update-defconfig")
	if got, want := string(mustRead(t, kconfig)), "# Kernel configuration of the test (header)\nCONFIG_DUMMY=m\nCONFIG_E1000=m\n# CONFIG_IPV6 is not set\n"; got != want {
		t.Errorf("kernel config written back:\n%s\nwant:\n%s", got, want)
	}
	fi, _ := os.Stat(kconfig)
	stamp, _ := os.Stat(filepath.Join(o.Output, "buildroot", "build", "linux-standin", ".stamp_kconfig_fixup_done"))
	if fi == nil || stamp == nil || !fi.ModTime().Equal(stamp.ModTime()) {
		t.Errorf("written-back kernel config has time stamp %v, want the kernel .config stamp's (touch --reference), %v", fi, stamp)
	}
	if _, err := os.Stat(filepath.Join(o.Output, writeBackDirName)); err == nil {
		t.Error("the write-back scratch directory was left behind")
	}

	// Refused before any container runs.
	for _, c := range []struct {
		targets, vars []string
		want          string
	}{
		{[]string{"busybox-update-config"}, nil, "does not set BR2_PACKAGE_BUSYBOX_CONFIG"},
		{[]string{"source", "menuconfig"}, nil, "run them as two `ipa-oci make` commands"},
		{[]string{"menuconfig"}, []string{"O=/elsewhere"}, "make variable O=...: O is not overridable"},
	} {
		_, err := Make(ctx, o, MakeOptions{Targets: c.targets, Vars: c.vars})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("make %q %q: %v, want %q", c.targets, c.vars, err, c.want)
		}
	}
	assertNoContainers(t, o.Output)
}

// TestMakeDownloads runs `ipa-oci make source` as the fetch phase (network on, the download
// cache writable, a scratch O=: OUTPUT/buildroot is not touched), and shows that a target
// that needs a download fails in the build container with a hint to run its -source target.
func TestMakeDownloads(t *testing.T) {
	f := newFixture(t)
	o := f.options(filepath.Join(f.dir, "out"))
	ctx := context.Background()
	var out bytes.Buffer
	_, err := Make(ctx, o, MakeOptions{Targets: []string{"all"}, Stdio: Stdio{Stdout: &out, Stderr: &out}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 2 || err.Error() != "make exited with code 2 in the builder container: standin 1.0 needed a download, and this container has no network and a read-only download cache: run `ipa-oci make standin-source` (or `ipa-oci make source`) first" {
		t.Fatalf("make all with an empty download cache: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Connection refused") && !strings.Contains(out.String(), "failed") {
		t.Errorf("make output lacks the failed download:\n%s", out.String())
	}
	config := mustRead(t, filepath.Join(o.Output, "buildroot", ".config"))
	out.Reset()
	res, err := Make(ctx, o, MakeOptions{Targets: []string{"source"}, Stdio: Stdio{Stdout: &out, Stderr: &out}})
	if err != nil || res.Phase != "fetch" {
		t.Fatalf("make source: %+v %v\n%s", res, err, out.String())
	}
	if !strings.Contains(out.String(), ">>> standin 1.0 Downloading") {
		t.Errorf("make source did not download:\n%s", out.String())
	}
	if got := mustRead(t, filepath.Join(o.DLDir, "standin", "standin-src-1.0.tar")); sha256hex(got) != tenv.srcSHA {
		t.Error("the source is not in the download cache")
	}
	if !bytes.Equal(mustRead(t, filepath.Join(o.Output, "buildroot", ".config")), config) {
		t.Error("make source touched OUTPUT/buildroot")
	}
	if _, err := os.Stat(filepath.Join(o.Output, scratchDirName)); err == nil {
		t.Error("the scratch O= was left behind")
	}
	out.Reset()
	if _, err := Make(ctx, o, MakeOptions{Targets: []string{"all"}, Stdio: Stdio{Stdout: &out, Stderr: &out}}); err != nil {
		t.Fatalf("make all after make source: %v\n%s", err, out.String())
	}
	assertNoContainers(t, o.Output)
}

// TestBuildExtrasAndClean: --env and --make-arg reach every container (the variable's value,
// the make variable), build-info records them (the --env value only as its sha256), they are
// part of the fetch stamp; --clean removes OUTPUT/buildroot (read-only directories too) and
// keeps the download and ccache directories; Clean refuses while a container of the output
// directory runs.
func TestBuildExtrasAndClean(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(f.dir, "out")
	o := f.options(out)
	o.HostEnv = append(o.HostEnv, "STANDIN_MIRROR_TOKEN=s3cret-value")
	o.Env = []string{"STANDIN_MIRROR_TOKEN"}
	o.MakeArgs = []string{"STANDIN_MARK=hello world"}
	ctx := context.Background()
	if _, err := Build(ctx, o); err != nil {
		t.Fatalf("build: %v\n%s", err, f.logBuf)
	}
	env := string(mustRead(t, filepath.Join(out, "buildroot", "build", "standin-env.txt")))
	if !strings.Contains(env, "STANDIN_MIRROR_TOKEN=s3cret-value\n") || !strings.Contains(env, "STANDIN_MARK=hello world\n") {
		t.Errorf("the container lacks --env or --make-arg:\n%s", env)
	}
	raw := mustRead(t, filepath.Join(out, BuildInfoName))
	bi, err := ReadBuildInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bi.Inputs.MakeArgs, "|") != "STANDIN_MARK=hello world" || len(bi.Inputs.Env) != 1 ||
		bi.Inputs.Env[0] != (EnvInput{Name: "STANDIN_MIRROR_TOKEN", SHA256: sha256hex([]byte("s3cret-value"))}) {
		t.Errorf("build-info: makeArgs %q env %+v", bi.Inputs.MakeArgs, bi.Inputs.Env)
	}
	if bytes.Contains(raw, []byte("s3cret-value")) {
		t.Error("build-info holds the --env value")
	}
	// Another make argument changes what may be downloaded: the fetch phase runs again.
	o2 := o
	o2.MakeArgs = []string{"STANDIN_MARK=other"}
	o2.Output = filepath.Join(f.dir, "out2")
	if res, err := Build(ctx, o2); err != nil || res.FetchSkipped {
		t.Errorf("build with another --make-arg: fetch skipped %v, %v", res != nil && res.FetchSkipped, err)
	}

	// --clean: O= goes (a read-only directory in it too), the caches stay.
	ro := filepath.Join(out, "buildroot", "build", "host-go", "pkg", "mod")
	mustWrite(t, filepath.Join(ro, "x.go"), "package x\n")
	os.Chmod(ro, 0o555)
	os.Chmod(filepath.Dir(ro), 0o555)
	mustWrite(t, filepath.Join(o.CcacheDir, "marker"), "kept\n")
	o.Clean = true
	if _, err := Build(ctx, o); err != nil {
		t.Fatalf("build --clean: %v\n%s", err, f.logBuf)
	}
	if _, err := os.Stat(filepath.Join(out, "buildroot", "build", "host-go")); err == nil {
		t.Error("--clean left OUTPUT/buildroot's content")
	}
	if !strings.Contains(f.logBuf.String(), "clean: removed the output tree") {
		t.Error("--clean did not say what it removed")
	}
	if _, err := os.Stat(filepath.Join(o.CcacheDir, "marker")); err != nil {
		t.Error("--clean removed the ccache directory's content")
	}
	if got := mustRead(t, filepath.Join(o.DLDir, "standin", "standin-src-1.0.tar")); sha256hex(got) != tenv.srcSHA {
		t.Error("--clean removed the download cache's content")
	}

	// Clean refuses while a container of this output directory runs.
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	o.Clean = false
	started := &signalWriter{ch: make(chan struct{})}
	go func() {
		done <- Shell(sctx, o, ShellOptions{Command: "echo started; sleep 60", Stdio: Stdio{Stdout: started, Stderr: &bytes.Buffer{}}})
	}()
	select {
	case <-started.ch:
	case err := <-done:
		t.Fatalf("shell ended: %v", err)
	}
	if _, err := Clean(ctx, o); err == nil || !strings.Contains(err.Error(), "(build) is running on "+out+": wait for it, or stop it first") {
		t.Errorf("clean while a container runs: %v", err)
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "shell cancelled") {
		t.Errorf("cancelled shell: %v", err)
	}
	removed, err := Clean(ctx, o)
	if err != nil || len(removed) != 1 || removed[0] != filepath.Join(out, "buildroot") {
		t.Errorf("clean: removed %q, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(out, KernelName)); err != nil {
		t.Error("clean removed the artifacts of the last build")
	}
	o.DLDir = filepath.Join(out, "buildroot", "dl")
	if _, err := Clean(ctx, o); err == nil || !strings.Contains(err.Error(), "the dl-dir directory "+o.DLDir+" is inside "+filepath.Join(out, "buildroot")) {
		t.Errorf("clean with the download cache inside O=: %v", err)
	}
	assertNoContainers(t, out)
}

// signalWriter closes ch once "started\n" was written to it.
type signalWriter struct {
	ch   chan struct{}
	once sync.Once
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "started\n") {
		w.once.Do(func() { close(w.ch) })
	}
	return len(p), nil
}
