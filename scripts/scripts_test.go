// Tests of the shell helpers that CI itself depends on: they run the real scripts against
// stand-in commands on PATH and assert on processes, exit codes and messages.
package scripts_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/cachedir"
)

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestStartDockerdStopsOnlyItsOwnDaemon: when the daemon it started does not come up,
// start-dockerd.sh stops that daemon by PID and leaves any other process named dockerd alone
// (it used to `pkill dockerd`, which would also kill the engine of whoever shares the machine).
func TestStartDockerdStopsOnlyItsOwnDaemon(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	other := filepath.Join(tmp, "other")
	state := filepath.Join(tmp, "state")
	for _, d := range []string{bin, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No engine ever answers; the daemon this script starts hangs without coming up.
	writeExec(t, filepath.Join(bin, "docker"), "#!/bin/sh\nexit 1\n")
	writeExec(t, filepath.Join(bin, "dockerd"), "#!/bin/sh\nwhile :; do sleep 1; done\n")
	// Someone else's engine: another process whose name is dockerd.
	writeExec(t, filepath.Join(other, "dockerd"), "#!/bin/sh\nwhile :; do sleep 1; done\n")
	sentinel := exec.Command(filepath.Join(other, "dockerd"))
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(sentinel.Process.Pid) + "/comm"); strings.TrimSpace(string(comm)) != "dockerd" {
		t.Fatalf("sentinel's process name is %q, want dockerd (the test would prove nothing)", comm)
	}

	cmd := exec.Command("bash", "start-dockerd.sh")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"),
		"IPA_OCI_DOCKERD_STATE="+state, "IPA_OCI_DOCKERD_TRIES=2")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("start-dockerd.sh with no engine coming up: err %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "no Docker engine") {
		t.Errorf("output does not say there is no engine:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(state, "dockerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	started, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(started) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(started) {
		syscall.Kill(started, syscall.SIGKILL)
		t.Errorf("the daemon start-dockerd.sh started (pid %d) is still running", started)
	}
	if !alive(sentinel.Process.Pid) {
		t.Errorf("start-dockerd.sh killed another process named dockerd (pid %d)", sentinel.Process.Pid)
	}
}

// TestCheckTreeRefusesStrayFiles: .ci/run's tree check fails, naming the file, on a merge or
// patch leftover whether tracked or not, and passes on a clean tree.
func TestCheckTreeRefusesStrayFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed")
	}
	repo := t.TempDir()
	script, err := filepath.Abs("check-tree.sh")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = repo
		c.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	check := func() (string, int) {
		c := exec.Command("bash", script, repo)
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	git("init", "-q")
	writeExec(t, filepath.Join(repo, "main.go"), "package main\n")
	writeExec(t, filepath.Join(repo, ".gitignore"), "build/\n")
	os.Mkdir(filepath.Join(repo, "build"), 0o755)
	writeExec(t, filepath.Join(repo, "build", "ignored.orig"), "x") // ignored output is not the tree
	git("add", ".")
	git("commit", "-qm", "init")
	if out, code := check(); code != 0 {
		t.Fatalf("clean tree: exit %d\n%s", code, out)
	}
	for _, name := range []string{"pull.go.orig", "Makefile.rej", "README.md~"} {
		p := filepath.Join(repo, name)
		writeExec(t, p, "leftover")
		out, code := check()
		if code != 1 || !strings.Contains(out, name) {
			t.Errorf("untracked %s: exit %d, want 1 naming it:\n%s", name, code, out)
		}
		git("add", name)
		out, code = check()
		if code != 1 || !strings.Contains(out, name) {
			t.Errorf("tracked %s: exit %d, want 1 naming it:\n%s", name, code, out)
		}
		git("rm", "-qf", name)
	}
	if out, code := check(); code != 0 {
		t.Fatalf("after removing the leftovers: exit %d\n%s", code, out)
	}
}

// TestShortModeNeedsNoDocker: `go test -short` (README: "only the fast tests") passes on a
// machine without a Docker engine: the tests that need one skip, saying why.
func TestShortModeNeedsNoDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test -short itself")
	}
	// All of builder/, and the commands of cmd/ipa-oci that drive it.
	var out []byte
	for _, args := range [][]string{{"../builder/"}, {"-run", "Build|Builder|Rebuild", "../cmd/ipa-oci/"}} {
		cmd := exec.Command("go", append([]string{"test", "-short", "-count=1", "-v"}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
		o, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go test -short %v without a Docker engine: %v\n%s", args, err, o)
		}
		out = append(out, o...)
	}
	skips := strings.Count(string(out), "skipped in -short mode: needs a Docker engine")
	if skips < 10 {
		t.Errorf("want the Docker tests to skip saying why, found %d such skips:\n%s", skips, out)
	}
}

// podmanStandins puts stand-ins for curl (the ping: answers when answer is true) and podman
// (records its arguments; `system service` hangs without ever answering) on a PATH, and
// returns that PATH, the podman call log and the state directory.
func podmanStandins(t *testing.T, answer bool) (path, calls, state string) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	calls, state = filepath.Join(tmp, "podman.calls"), filepath.Join(tmp, "state")
	code := "1"
	if answer {
		code = "0"
	}
	writeExec(t, filepath.Join(bin, "curl"), "#!/bin/sh\nexit "+code+"\n")
	writeExec(t, filepath.Join(bin, "podman"), "#!/bin/sh\necho \"$*\" >>"+calls+"\n"+
		"[ \"$1 $2\" = \"system service\" ] && while :; do sleep 1; done\nexit 0\n")
	return bin + ":" + os.Getenv("PATH"), calls, state
}

func runStartPodman(t *testing.T, path, state string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "start-podman.sh")
	cmd.Env = append(os.Environ(), "PATH="+path, "IPA_OCI_PODMAN_STATE="+state, "IPA_OCI_PODMAN_TRIES=2",
		"IPA_OCI_PODMAN_SOCK="+filepath.Join(state, "podman.sock"),
		"IPA_OCI_CONTAINERS_CONF_D="+filepath.Join(state, "containers.conf.d"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestStartPodmanStopsOnlyItsOwnService: when the Podman service it started does not answer,
// start-podman.sh stops that process by PID and leaves any other process named podman alone.
func TestStartPodmanStopsOnlyItsOwnService(t *testing.T) {
	path, _, state := podmanStandins(t, false)
	other := filepath.Join(t.TempDir(), "podman")
	writeExec(t, other, "#!/bin/sh\nwhile :; do sleep 1; done\n")
	sentinel := exec.Command(other)
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(sentinel.Process.Pid) + "/comm"); strings.TrimSpace(string(comm)) != "podman" {
		t.Fatalf("sentinel's process name is %q, want podman (the test would prove nothing)", comm)
	}
	out, code := runStartPodman(t, path, state)
	if code != 1 || !strings.Contains(out, "did not come up") {
		t.Fatalf("start-podman.sh with a service that never answers: exit %d, want 1 saying so\n%s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(state, "podman.pid"))
	if err != nil {
		t.Fatal(err)
	}
	started, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(started) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(started) {
		syscall.Kill(started, syscall.SIGKILL)
		t.Errorf("the service start-podman.sh started (pid %d) is still running", started)
	}
	if !alive(sentinel.Process.Pid) {
		t.Errorf("start-podman.sh killed another process named podman (pid %d)", sentinel.Process.Pid)
	}
}

// TestStartPodmanIsIdempotent: with a service answering and the base image present, a second
// run starts nothing and leaves the containers.conf drop-in as the first run wrote it (on a
// host without CAP_SYS_RESOURCE: default_ulimits within this process's hard limits).
func TestStartPodmanIsIdempotent(t *testing.T) {
	path, calls, state := podmanStandins(t, true)
	for run := 1; run <= 2; run++ {
		out, code := runStartPodman(t, path, state)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s", run, code, out)
		}
		if run == 2 && out != "" {
			t.Errorf("second run did something:\n%s", out)
		}
	}
	b, _ := os.ReadFile(calls)
	if strings.Contains(string(b), "system service") || strings.Count(string(b), "image exists") != 2 {
		t.Errorf("podman calls with a service answering:\n%s", b)
	}
	conf, err := os.ReadFile(filepath.Join(state, "containers.conf.d", "50-ipa-oci-ulimits.conf"))
	status, _ := os.ReadFile("/proc/self/status")
	var capBnd uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			capBnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if capBnd&(1<<24) != 0 { // CAP_SYS_RESOURCE: Podman may raise the limits itself
		if err == nil {
			t.Errorf("drop-in written on a host with CAP_SYS_RESOURCE:\n%s", conf)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var nofile, nproc syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	syscall.Getrlimit(6 /* RLIMIT_NPROC */, &nproc)
	want := fmt.Sprintf(`default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]`,
		min(nofile.Max, 1048576), min(nofile.Max, 1048576), min(nproc.Max, 32768), min(nproc.Max, 32768))
	if !strings.Contains(string(conf), "[containers]\n"+want+"\n") {
		t.Errorf("drop-in:\n%s\nwant %s", conf, want)
	}
}

// TestCacheDirScriptAgreesWithGo: cache-dir.sh's ipa_oci_cache_dir and internal/cachedir name
// the same directory for every combination of IPA_OCI_CACHE, XDG_CACHE_HOME and HOME, and no
// script works out a cache directory of its own.
func TestCacheDirScriptAgreesWithGo(t *testing.T) {
	for _, env := range [][3]string{
		{"/srv/cache", "/xdg", "/home/u"}, {"", "/xdg", "/home/u"}, {"", "/xdg/", "/home/u"},
		{"", "rel/xdg", "/home/u"}, {"", "", "/home/u"}, {"", "", ""},
	} {
		t.Setenv("IPA_OCI_CACHE", env[0])
		t.Setenv("XDG_CACHE_HOME", env[1])
		t.Setenv("HOME", env[2])
		want, goErr := cachedir.Dir()
		out, err := exec.Command("bash", "-c", `set -euo pipefail; . ./cache-dir.sh; ipa_oci_cache_dir`).Output()
		got := strings.TrimSpace(string(out))
		if (goErr != nil) != (err != nil) || (goErr == nil && filepath.Clean(got) != want) {
			t.Errorf("IPA_OCI_CACHE=%q XDG_CACHE_HOME=%q HOME=%q: Go %q (%v), cache-dir.sh %q (%v)", env[0], env[1], env[2], want, goErr, got, err)
		}
	}
	scripts, _ := filepath.Glob("*.sh")
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if s != "cache-dir.sh" && strings.Contains(string(b), "${IPA_OCI_CACHE:-$HOME") {
			t.Errorf("%s computes the cache directory itself: source cache-dir.sh and call ipa_oci_cache_dir", s)
		}
	}
}
