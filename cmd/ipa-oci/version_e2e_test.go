package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// goVersionM reads what `go version -m` says about bin: the Go version, the main module's
// version, the VCS revision and whether the tree was modified. It is the reader of build
// information that `ipa-oci version` is held against.
func goVersionM(t *testing.T, bin string) (goVersion, module, revision string, modified bool) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	for i, l := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(l), "\t")
		switch {
		case i == 0:
			goVersion = l[strings.LastIndex(l, " ")+1:]
		case len(f) >= 3 && f[0] == "mod":
			module = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			revision = strings.TrimPrefix(f[1], "vcs.revision=")
		case len(f) == 2 && f[0] == "build" && f[1] == "vcs.modified=true":
			modified = true
		}
	}
	return goVersion, module, revision, modified
}

// wantVersion is what `ipa-oci version` must print for a binary go version -m describes so.
func wantVersion(goVersion, module, revision string, modified bool) string {
	if revision == "" {
		revision = "unknown"
	} else if modified {
		revision += "+dirty"
	}
	return "ipa-oci version " + module + "\nrevision: " + revision + "\ngo: " + goVersion + "\n"
}

// TestE2EVersion: `ipa-oci version` and `ipa-oci --version` print the same three lines, which
// say what `go version -m` reads from the binary. A binary built from a clean clone names the
// clone's HEAD commit; one built with an untracked file in the tree says +dirty.
func TestE2EVersion(t *testing.T) {
	want := wantVersion(goVersionM(t, ipaOCI))
	if !strings.HasSuffix(want, "go: "+runtime.Version()+"\n") {
		t.Errorf("go version -m says the binary was built with another Go than the tests: %q", want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out := mustOK(t, args...); out != want {
			t.Errorf("ipa-oci %s:\n%s\nwant:\n%s", args[0], out, want)
		}
	}

	// The revision: build from a clone, which Go stamps (it does not stamp a binary built in a
	// git worktree, whose .git is a file), holding this tree as it is: committed there.
	if testing.Short() {
		t.Skip("-short: builds ipa-oci twice more from a clone")
	}
	root := testenv.RepoRoot(t)
	clone := filepath.Join(t.TempDir(), "clone")
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("", "git", "clone", "-q", root, clone)
	for _, name := range strings.Fields(run(root, "git", "ls-files", "--modified", "--others", "--exclude-standard")) {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			os.Remove(filepath.Join(clone, name)) // deleted in this tree
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(clone, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clone, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(clone, "git", "add", "-A")
	run(clone, "git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-q", "--allow-empty", "-m", "the tree under test")
	head := run(clone, "git", "rev-parse", "HEAD")
	bin := filepath.Join(t.TempDir(), "ipa-oci")
	build := func() string {
		run(clone, "go", "build", "-buildvcs=true", "-trimpath", "-o", bin, "./cmd/ipa-oci")
		return run("", bin, "version") + "\n"
	}
	out := build()
	if !regexp.MustCompile("(?m)^revision: " + head + "$").MatchString(out) {
		t.Errorf("ipa-oci version of a clean clone at %s:\n%s", head, out)
	}
	if want := wantVersion(goVersionM(t, bin)); out != want {
		t.Errorf("ipa-oci version of the clone:\n%s\nwant (go version -m):\n%s", out, want)
	}
	if err := os.WriteFile(filepath.Join(clone, "untracked"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := build(); !strings.Contains(out, "revision: "+head+"+dirty\n") {
		t.Errorf("ipa-oci version of a modified clone at %s:\n%s\nwant revision %s+dirty", head, out, head)
	}
}
