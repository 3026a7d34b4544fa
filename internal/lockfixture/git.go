package lockfixture

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a bare git repository with a work tree beside it (bare + ".work") that commits are
// made in and pushed from.
type Repo struct {
	Bare string // path of the bare repository
	URL  string // file:// URL of it
	work string
}

// NewRepo creates a bare repository whose master branch has one commit (committer and author
// date date, a Unix time) holding files, and tags it v1.0.
func NewRepo(t testing.TB, bare, date string, files map[string]string) (*Repo, string) {
	t.Helper()
	r := &Repo{Bare: bare, URL: "file://" + bare, work: bare + ".work"}
	r.git(t, date, "", "init", "-q", "-b", "master", r.work)
	head := r.Commit(t, "master", date, files)
	r.git(t, date, r.work, "tag", "-a", "-m", "v1.0", "v1.0")
	r.git(t, date, "", "clone", "-q", "--bare", r.work, bare)
	return r, head
}

// Commit writes files on branch (created from master if missing; the content Delete removes
// a file), commits with date, pushes the branch to the bare repository if it exists, and
// returns the new commit.
func (r *Repo) Commit(t testing.TB, branch, date string, files map[string]string) string {
	t.Helper()
	switch {
	case r.run(date, r.work, "rev-parse", "--verify", "-q", "HEAD^{commit}") != nil:
		// unborn: the first commit goes on the branch init made
	case r.run(date, r.work, "rev-parse", "--verify", "-q", "refs/heads/"+branch) == nil:
		r.git(t, date, r.work, "checkout", "-q", branch)
	default:
		r.git(t, date, r.work, "checkout", "-q", "-b", branch, "master")
	}
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == Delete {
			r.git(t, date, r.work, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.git(t, date, r.work, "add", "-A")
	r.git(t, date, r.work, "commit", "-q", "--allow-empty", "-m", "change at "+date)
	head := r.git(t, date, r.work, "rev-parse", "HEAD")
	if _, err := os.Stat(r.Bare); err == nil {
		r.git(t, date, r.work, "push", "-q", "-f", r.Bare, branch)
	}
	if r.run(date, r.work, "rev-parse", "--verify", "-q", "refs/heads/master") == nil {
		r.git(t, date, r.work, "checkout", "-q", "master")
	}
	return head
}

// Delete as a file's content in Commit removes the file.
const Delete = "\x00delete"

func (r *Repo) env(date string) []string {
	return append(os.Environ(), "GIT_AUTHOR_DATE="+date+" +0000", "GIT_COMMITTER_DATE="+date+" +0000",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
}

func (r *Repo) git(t testing.TB, date, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, r.env(date)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// run runs git and returns only whether it succeeded.
func (r *Repo) run(date, dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, r.env(date)
	return cmd.Run()
}
