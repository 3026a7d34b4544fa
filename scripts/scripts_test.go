// Tests of the shell helpers that CI itself depends on: they run the real scripts against
// stand-in commands on PATH and assert on processes, exit codes and messages.
package scripts_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
