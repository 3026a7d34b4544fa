package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
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
	if got, err := fsutil.SHA256File(tarball); err != nil || got != sum {
		if offline {
			return "", errkind.Mark(ErrOffline, "offline: Buildroot tarball %s (sha256 %s) is not in the cache %s; run once with the network", rawURL, sum, dir)
		}
		log.WithField("url", rawURL).Info("downloading Buildroot release")
		if err := download(ctx, newHTTPDownloader(defaultHTTPTimeouts()), rawURL, tarball, sum); err != nil {
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
			sum, err := fsutil.SHA256File(p)
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
