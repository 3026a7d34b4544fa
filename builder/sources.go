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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

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

// httpTimeouts bound every HTTP request the builder package makes: connecting, the TLS
// handshake and the wait for response headers each have a limit, and a body must keep
// arriving (idleRead without a byte aborts it). The whole transfer has no limit, so a slow
// but steady download of a large release still succeeds.
type httpTimeouts struct {
	dial, tlsHandshake, responseHeader, idleRead time.Duration
}

func defaultHTTPTimeouts() httpTimeouts {
	return httpTimeouts{dial: 30 * time.Second, tlsHandshake: 30 * time.Second, responseHeader: time.Minute, idleRead: time.Minute}
}

// httpDownloader is the HTTP client of release downloads (never http.DefaultClient).
type httpDownloader struct {
	client   *http.Client
	idleRead time.Duration
}

func newHTTPDownloader(t httpTimeouts) *httpDownloader {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: t.dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   t.tlsHandshake,
		ResponseHeaderTimeout: t.responseHeader,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &httpDownloader{client: &http.Client{Transport: tr}, idleRead: t.idleRead}
}

// errStalled is the cancellation cause when a response body stops arriving.
var errStalled = errors.New("no data received")

// get starts a GET of rawURL; the returned body aborts the request when no byte arrives for
// d.idleRead. Closing the body releases everything.
func (d *httpDownloader) get(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel(nil)
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	idle := d.idleRead
	timer := time.AfterFunc(idle, func() { cancel(fmt.Errorf("%w for %s", errStalled, idle)) })
	return &idleBody{body: resp.Body, ctx: ctx, cancel: cancel, timer: timer, idle: idle}, nil
}

// idleBody re-arms its timer on every read that returns data.
type idleBody struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil && errors.Is(cause, errStalled) {
			err = cause
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// download fetches rawURL (http, https or file) to dst, verifying its sha256 before renaming
// the temporary file into place.
func download(ctx context.Context, d *httpDownloader, rawURL, dst, sum string) error {
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
		if body, err = d.get(ctx, rawURL); err != nil {
			return fmt.Errorf("download %s: %w", rawURL, err)
		}
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
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("download %s: sha256 is %s, want %s; check the url and sha256 in %s", rawURL, got, sum, ConfigFileName)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
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
