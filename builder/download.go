package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
)

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

// download fetches rawURL (http, https or file) to dst, verifying its sha256 before the
// temporary file is renamed into place (fsutil.WriteAtomic).
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
	return fsutil.WriteAtomic(dst, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), body); err != nil {
			return fmt.Errorf("download %s: %w", rawURL, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			return fmt.Errorf("download %s: sha256 is %s, want %s; check buildroot.url and buildroot.sha256", rawURL, got, sum)
		}
		return nil
	})
}
