package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
)

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ResolvedGit is a git source with its ref resolved to a commit.
type ResolvedGit struct {
	Repo       string `json:"repo"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit"`
	CommitTime int64  `json:"commitTime"`
}

// gitEnvAllow are the only host environment variables host-side git sees: how to reach a
// remote (proxies, CA bundles, the ssh agent, an ssh command) and PATH to find ssh. Nothing
// else from the user's environment reaches it (no GIT_DIR, GIT_CONFIG_*, HOME, ...).
var gitEnvAllow = []string{
	"PATH", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND",
}

// gitHardening is command-line configuration (git's highest precedence, so it wins over a
// repository's own config and anything it includes) that keeps git from running commands a
// repository could name. It is the second line of defence: the first is that the mirrors are
// owned by the host user and no container can write them.
var gitHardening = [][2]string{
	{"core.hooksPath", "/dev/null"}, // no hooks (reference-transaction runs on fetch and update-ref)
	{"core.fsmonitor", "false"},
	{"credential.helper", ""},       // an empty value resets the list: no helper programs
	{"protocol.allow", "never"},     // a repository's protocol.<name>.allow would win over this:
	{"protocol.ext.allow", "never"}, // so name the command-running transports explicitly
	{"protocol.fd.allow", "never"},
	{"protocol.file.allow", "always"},
	{"protocol.https.allow", "always"},
	{"protocol.http.allow", "always"},
	{"protocol.ssh.allow", "always"},
	{"protocol.git.allow", "always"},
	{"safe.bareRepository", "explicit"},
	{"fetch.recurseSubmodules", "false"},
	{"gc.autoDetach", "false"}, // no git process outlives the command
}

// gitRunner runs host-side git: hooks off, no system or global config, the user's HOME out of
// reach, only gitEnvAllow from the environment, and never safe.directory: git refuses a
// repository owned by another user, and ensureCommit says so first.
type gitRunner struct {
	env []string
}

func newGitRunner(hostEnv []string) *gitRunner {
	env := []string{
		"HOME=/nonexistent",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/true",
		"LC_ALL=C",
	}
	sshCommand := "ssh -o BatchMode=yes" // never prompt; also overrides core.sshCommand
	path := "PATH=/usr/local/bin:/usr/bin:/bin"
	for _, kv := range hostEnv {
		k, v, _ := strings.Cut(kv, "=")
		for _, a := range gitEnvAllow {
			if k != a {
				continue
			}
			switch k {
			case "GIT_SSH_COMMAND":
				sshCommand = v
			case "PATH":
				path = kv
			default:
				env = append(env, kv)
			}
		}
	}
	env = append(env, path, "GIT_SSH_COMMAND="+sshCommand, "GIT_CONFIG_COUNT="+strconv.Itoa(len(gitHardening)))
	for i, kv := range gitHardening {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return &gitRunner{env: env}
}

// run runs git in / with gitDir (if any) given explicitly, so no repository is ever found by
// searching upwards from a directory, and returns its trimmed stdout.
func (g *gitRunner) run(ctx context.Context, gitDir string, args ...string) (string, error) {
	full := args
	if gitDir != "" {
		full = append([]string{"--git-dir=" + gitDir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = "/"
	cmd.Env = g.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

// lsRemote resolves ref in repo to a commit with `git ls-remote` (tags are peeled). A 40-hex
// ref is taken as a commit ID as it is.
func (g *gitRunner) lsRemote(ctx context.Context, repo, ref string) (string, error) {
	if commitRE.MatchString(ref) {
		return ref, nil
	}
	out, err := g.run(ctx, "", "ls-remote", repo, ref, ref+"^{}")
	if err != nil {
		return "", fmt.Errorf("resolve %s %s: %w", repo, ref, err)
	}
	found := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(l, "\t")
		if ok {
			found[name] = sha
		}
	}
	for _, name := range []string{
		"refs/tags/" + ref + "^{}", "refs/tags/" + ref, "refs/heads/" + ref, ref + "^{}", ref,
	} {
		if sha, ok := found[name]; ok && commitRE.MatchString(sha) {
			return sha, nil
		}
	}
	return "", fmt.Errorf("resolve %s %s: no such branch or tag (git ls-remote found none)", repo, ref)
}

// mirrorName is the bare repository name under DL_DIR/ipa-oci-git/ for a repository URL.
func mirrorName(repo string) string {
	base := strings.TrimSuffix(path.Base(strings.TrimRight(repo, "/")), ".git")
	h := sha256.Sum256([]byte(repo))
	return base + "-" + hex.EncodeToString(h[:4]) + ".git"
}

// openMirror checks that the mirror at dir exists and belongs to the host user; exists is
// false when there is none.
func openMirror(dir string) (exists bool, err error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, checkHostOwned(dir, fi)
}

// ensureCommit makes sure commit is in the bare mirror at dir, fetching it from repo if not
// (offline: fail clearly instead), and returns the commit's committer time. It fetches ref
// first (a branch or tag: the commit is its tip, or in its history for a rebuild after the
// branch moved on) and falls back to fetching the commit by its ID.
func (g *gitRunner) ensureCommit(ctx context.Context, dir, repo, ref, commit string, offline bool) (int64, error) {
	exists, err := openMirror(dir)
	if err != nil {
		return 0, err
	}
	if !exists {
		if offline {
			return 0, errkind.Mark(ErrOffline, "offline: no local mirror of %s in %s; run once with the network", repo, dir)
		}
		// --shared=0644: readable by the container user whatever the umask, writable by no one else.
		if _, err := g.run(ctx, "", "init", "--bare", "-q", "--shared=0644", dir); err != nil {
			return 0, err
		}
	}
	if !g.hasCommit(ctx, dir, commit) {
		if offline {
			return 0, errkind.Mark(ErrOffline, "offline: commit %s of %s is not in %s; run once with the network", commit, repo, dir)
		}
		var refErr error
		if !commitRE.MatchString(ref) {
			_, refErr = g.run(ctx, dir, "fetch", "-q", "--no-tags", repo, "+"+ref+":refs/ipa-oci/"+strings.TrimPrefix(ref, "refs/"))
		}
		if !g.hasCommit(ctx, dir, commit) {
			if _, err := g.run(ctx, dir, "fetch", "-q", "--no-tags", repo, commit); err != nil {
				if refErr != nil {
					return 0, fmt.Errorf("fetch %s %s: %w", repo, ref, refErr)
				}
				return 0, fmt.Errorf("%s %s: commit %s is not in the fetched ref and fetching it by ID failed (did the branch move? retry): %w", repo, ref, commit, err)
			}
		}
		if !g.hasCommit(ctx, dir, commit) {
			return 0, fmt.Errorf("%s %s: commit %s not found after fetching (did the branch move? retry)", repo, ref, commit)
		}
		// Keep the commit reachable under a stable name, whatever ref it came from.
		if _, err := g.run(ctx, dir, "update-ref", "refs/ipa-oci/commits/"+commit, commit); err != nil {
			return 0, err
		}
	}
	t, err := g.run(ctx, dir, "log", "-1", "--format=%ct", commit)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(t, 10, 64)
}

func (g *gitRunner) hasCommit(ctx context.Context, dir, commit string) bool {
	_, err := g.run(ctx, dir, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

// resolveOffline resolves ref without the network, from the refs a previous fetch stored.
func (g *gitRunner) resolveOffline(ctx context.Context, dir, repo, ref string) (string, error) {
	if commitRE.MatchString(ref) {
		return ref, nil
	}
	exists, err := openMirror(dir)
	if err != nil {
		return "", err
	}
	if !exists {
		return "", errkind.Mark(ErrOffline, "offline: no local mirror of %s in %s; run once with the network", repo, dir)
	}
	sha, err := g.run(ctx, dir, "rev-parse", "-q", "--verify", "refs/ipa-oci/"+strings.TrimPrefix(ref, "refs/")+"^{commit}")
	if err != nil {
		return "", errkind.Mark(ErrOffline, "offline: %s %s was never fetched into %s; run once with the network, or give a commit ID", repo, ref, dir)
	}
	return sha, nil
}
