package images

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The retry policy of every registry operation lives in this file: one predicate (retryable),
// one backoff schedule (options.backoffFor: 1s, 3s, 9s, 10s by default), applied once per
// operation by options.retry. The layers below it (registryTarget.doOnce, FetchBlob,
// go-containerregistry's remote.WriteLayer) send each request once and never retry themselves.

// retryable reports whether err is worth another attempt: 5xx, 429, 408, broken connections.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusRequestTimeout
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrDigestMismatch) {
		return false // the registry serves other bytes than the descriptor names: it will again
	}
	if errors.As(err, new(*fs.PathError)) {
		return false // a local file error (disk full, permissions): another attempt fails the same way
	}
	var ne net.Error // (syscall.Errno is one too: check local file errors first)
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// retry runs op until it succeeds, fails with an error retryable refuses, or o.retries more
// attempts have failed, waiting o.backoffFor(n) before the n-th retry. what names the operation
// in the warning logged before each wait.
func (o *options) retry(ctx context.Context, what string, op func() error) error {
	return o.retryResumable(ctx, what, func() (bool, error) { return false, op() })
}

// retryResumable is retry for a transfer that resumes where it stopped: an attempt that made
// progress (progressed == true) before it failed starts the count of retries afresh, so a
// long download through a flaky link is not abandoned while it advances.
func (o *options) retryResumable(ctx context.Context, what string, op func() (progressed bool, err error)) error {
	for attempt := 0; ; {
		progressed, err := op()
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		if progressed {
			attempt = 0
		}
		if attempt >= o.retries {
			return err
		}
		wait := o.backoffFor(attempt)
		attempt++
		o.log.WithFields(map[string]any{"op": what, "attempt": attempt, "wait": wait.String()}).WithError(err).Warn("retrying")
		if err := o.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
