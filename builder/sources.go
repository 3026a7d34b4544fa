package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// fetchBuildroot returns a Buildroot tree extracted from the release tarball at rawURL, which
// must have the given sha256. Tarball and tree are cached under cacheDir/buildroot/<sha256>/;
// the download is verified before it is renamed into the cache. offline forbids downloading.
func fetchBuildroot(ctx context.Context, cacheDir, rawURL, sum string, offline bool, log logrus.FieldLogger) (string, error) {
	sum = strings.ToLower(strings.TrimPrefix(sum, "sha256:"))
	if len(sum) != 64 {
		return "", fmt.Errorf("buildroot sha256 %q: need 64 hex digits (from the release's .sign file)", sum)
	}
	dir := filepath.Join(cacheDir, "buildroot", sum)
	tree := filepath.Join(dir, "tree")
	if fi, err := os.Stat(filepath.Join(tree, "Makefile")); err == nil && fi.Mode().IsRegular() {
		return tree, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("buildroot cache: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Path == "" {
		return "", fmt.Errorf("buildroot url %q: not a URL", rawURL)
	}
	tarball := filepath.Join(dir, path.Base(u.Path))
	if got, err := fileSHA256(tarball); err != nil || got != sum {
		if offline {
			return "", fmt.Errorf("offline: Buildroot tarball %s (sha256 %s) is not in the cache %s; run once without --offline", rawURL, sum, dir)
		}
		log.WithField("url", rawURL).Info("downloading Buildroot release")
		if err := download(ctx, rawURL, tarball, sum); err != nil {
			return "", err
		}
	}
	tmp, err := os.MkdirTemp(dir, "tree-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", tmp, "--strip-components=1", "--no-same-owner", "--no-same-permissions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("extract %s: %w: %s", tarball, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(filepath.Join(tmp, "Makefile")); err != nil {
		return "", fmt.Errorf("%s does not look like a Buildroot release (no top-level Makefile)", rawURL)
	}
	// MkdirTemp makes 0700; the container user must be able to read the tree.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, tree); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("buildroot cache: %w", err)
	}
	return tree, nil
}

// download fetches rawURL (http, https or file) to dst, verifying size-independent sha256
// before renaming the temporary file into place.
func download(ctx context.Context, rawURL, dst, sum string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	var body io.ReadCloser
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return fmt.Errorf("download %s: %w", rawURL, err)
		}
		body = f
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("download %s: %w", rawURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("download %s: HTTP %s", rawURL, resp.Status)
		}
		body = resp.Body
	default:
		return fmt.Errorf("download %s: unsupported scheme %q (use https, http or file)", rawURL, u.Scheme)
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		tmp.Close()
		return fmt.Errorf("download %s: %w", rawURL, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("download %s: sha256 is %s, want %s; check the url and sha256 in %s", rawURL, got, sum, ConfigFileName)
	}
	return os.Rename(tmp.Name(), dst)
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TreeHash returns a sha256 over a directory's content: each regular file's relative path,
// executable bit and bytes, and each symlink's target, in sorted order. Modification times,
// owners and the .git directory are not part of it.
func TreeHash(root string) (string, error) {
	type entry struct{ rel, kind string }
	var entries []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if d.Name() == ".git" && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, entry{filepath.ToSlash(rel), "link " + t})
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum, err := fileSHA256(p)
			if err != nil {
				return err
			}
			mode := "644"
			if fi.Mode()&0o111 != 0 {
				mode = "755"
			}
			entries = append(entries, entry{filepath.ToSlash(rel), "file " + mode + " " + sum})
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash tree %s: %w", root, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00%s\n", e.rel, e.kind)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ResolvedGit is a git source with its ref resolved to a commit.
type ResolvedGit struct {
	Repo       string `json:"repo"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit"`
	CommitTime int64  `json:"commitTime"`
}

// git runs git with prompts off and returns its trimmed stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	// The mirrors may belong to the container user (when root runs ipa-oci): trust them.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/true", "LC_ALL=C",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*")
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
func lsRemote(ctx context.Context, repo, ref string) (string, error) {
	if commitRE.MatchString(ref) {
		return ref, nil
	}
	out, err := git(ctx, "", "ls-remote", repo, ref, ref+"^{}")
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

// ensureCommit makes sure commit is in the bare mirror at dir, fetching ref from repo if not
// (offline: fail clearly instead), and returns the commit's committer time.
func ensureCommit(ctx context.Context, dir, repo, ref, commit string, offline bool) (int64, error) {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if offline {
			return 0, fmt.Errorf("offline: no local mirror of %s in %s; run once without --offline", repo, dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		if _, err := git(ctx, dir, "init", "--bare", "-q"); err != nil {
			return 0, err
		}
	}
	if _, err := git(ctx, dir, "cat-file", "-e", commit+"^{commit}"); err != nil {
		if offline {
			return 0, fmt.Errorf("offline: commit %s of %s is not in %s; run once without --offline", commit, repo, dir)
		}
		src := ref
		if !commitRE.MatchString(ref) {
			src = "+" + ref + ":refs/ipa-oci/" + strings.TrimPrefix(ref, "refs/")
		}
		if _, err := git(ctx, dir, "fetch", "-q", "--no-tags", repo, src); err != nil {
			return 0, fmt.Errorf("fetch %s %s: %w", repo, ref, err)
		}
		if _, err := git(ctx, dir, "cat-file", "-e", commit+"^{commit}"); err != nil {
			return 0, fmt.Errorf("%s %s: commit %s not found after fetching (did the branch move? retry)", repo, ref, commit)
		}
		// Keep the commit reachable under a stable name, whatever ref it came from.
		if _, err := git(ctx, dir, "update-ref", "refs/ipa-oci/commits/"+commit, commit); err != nil {
			return 0, err
		}
	}
	t, err := git(ctx, dir, "log", "-1", "--format=%ct", commit)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(t, 10, 64)
}

// resolveOffline resolves ref without the network, from the refs a previous fetch stored.
func resolveOffline(ctx context.Context, dir, repo, ref string) (string, error) {
	if commitRE.MatchString(ref) {
		return ref, nil
	}
	sha, err := git(ctx, dir, "rev-parse", "-q", "--verify", "refs/ipa-oci/"+strings.TrimPrefix(ref, "refs/")+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("offline: %s %s was never fetched into %s; run once without --offline or pass a commit ID", repo, ref, dir)
	}
	return sha, nil
}
