package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/sirupsen/logrus"
)

// The retry policy of every registry operation lives in this file: one predicate (retryable),
// one backoff schedule (policy.backoffFor: 1s, 3s, 9s, 10s by default), applied once per
// operation by policy.do, and by blobReader between the requests of one blob download. The
// layers below never retry: go-containerregistry gets an authenticated transport.Wrapper,
// which it wraps in no retry transport, and libraryRetryOff for its upload and PUT loops.
//
// Why not go-containerregistry's own retries (remote.WithRetryBackoff, WithRetryPredicate,
// WithRetryStatusCodes)? Its Backoff cannot express this schedule: a Cap ends the loop at the
// sleep that reaches it (Duration 1s, Factor 3, Steps 5, Cap 10s gives 3 attempts, not 5),
// and without a Cap the fourth wait is 27s; it waits with time.Sleep, deaf to cancellation;
// it logs through its own global logger; and it cannot retry the Range request of a resumed
// download, which is not its own. So the policy is applied here, once, and the library's is off.

// policy is the retry policy: how many retries, the first wait, the cap, how to wait.
type policy struct {
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	sleep      func(ctx context.Context, d time.Duration) error
	log        logrus.FieldLogger
}

func defaultPolicy() policy {
	return policy{retries: 4, backoff: time.Second, maxBackoff: 10 * time.Second, sleep: sleepCtx}
}

// backoffFor returns the wait before retry attempt n (0-based).
func (p policy) backoffFor(n int) time.Duration {
	d := p.backoff
	for i := 0; i < n && d < p.maxBackoff; i++ {
		d *= 3
	}
	return min(d, p.maxBackoff)
}

// retryable reports whether err is worth another attempt: 5xx, 429, 408, broken connections.
func retryable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusRequestTimeout
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, content.ErrDigestMismatch) {
		return false // the registry serves other bytes than the descriptor names: it will again
	}
	if errors.As(err, new(*fs.PathError)) {
		return false // a local file error (disk full, permissions): another attempt fails the same way
	}
	var ne net.Error // (syscall.Errno is one too: check local file errors first)
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// do runs op until it succeeds, fails with an error retryable refuses, or p.retries more
// attempts have failed, waiting p.backoffFor(n) before the n-th retry. what names the
// operation in the warning logged before each wait.
func (p policy) do(ctx context.Context, what string, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if !p.again(ctx, err, attempt) {
			return err
		}
		if err := p.wait(ctx, what, attempt, err); err != nil {
			return err
		}
	}
}

// again reports whether an operation that failed with err on its attempt-th retry (0: the
// first try) should be tried again.
func (p policy) again(ctx context.Context, err error, attempt int) bool {
	return err != nil && retryable(err) && ctx.Err() == nil && attempt < p.retries
}

// wait logs the failure and waits before retry number attempt+1.
func (p policy) wait(ctx context.Context, what string, attempt int, err error) error {
	d := p.backoffFor(attempt)
	p.log.WithFields(map[string]any{"op": what, "attempt": attempt + 1, "wait": d.String()}).WithError(err).Warn("retrying")
	return p.sleep(ctx, d)
}

// libraryRetryOff switches go-containerregistry's operation-level retries off (its upload and
// manifest PUT loops): one attempt each, whatever the predicate says.
func libraryRetryOff() []remote.Option {
	return []remote.Option{
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
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
