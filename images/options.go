package images

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
)

// Option configures push, pull, inspect and verify.
type Option func(*options)

type options struct {
	plainHTTP  bool
	keychain   authn.Keychain
	transport  http.RoundTripper
	log        logrus.FieldLogger
	progress   io.Writer
	retries    int
	backoff    time.Duration
	userAgent  string
	maxBackoff time.Duration
	sleep      func(ctx context.Context, d time.Duration) error // the retry policy's wait
}

func makeOptions(opts ...Option) *options {
	o := &options{
		keychain:   authn.DefaultKeychain,
		transport:  defaultTransport(),
		log:        logrus.New(),
		retries:    4,
		backoff:    time.Second,
		maxBackoff: 10 * time.Second,
		userAgent:  "ipa-oci",
		sleep:      sleepCtx,
	}
	discard := logrus.New()
	discard.SetOutput(io.Discard)
	o.log = discard
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// defaultTransport honours HTTP(S)_PROXY/NO_PROXY from the environment.
func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	return t
}

// WithPlainHTTP talks to the registry over plain HTTP instead of HTTPS.
func WithPlainHTTP(plain bool) Option { return func(o *options) { o.plainHTTP = plain } }

// WithKeychain sets where credentials come from (default: docker config and credential helpers).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sets the HTTP transport used for every registry request.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithLogger sets the structured logger (default: silent).
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// WithProgress draws progress bars for blob transfers on w (nil: none).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// WithRetry sets how often a failed registry operation (one request, one blob upload, or one
// blob download, which resumes where it broke) is retried, and the first wait; the wait triples
// after each attempt up to 10s. Default: 4 retries after waiting 1s, 3s, 9s and 10s, so at most
// 5 attempts and 23s of waiting per operation. Retried: 5xx, 429, 408 and broken connections.
// A blob download that received bytes before it broke starts its count afresh.
func WithRetry(retries int, backoff time.Duration) Option {
	return func(o *options) { o.retries, o.backoff = retries, backoff }
}

// backoffFor returns the wait before retry attempt n (0-based).
func (o *options) backoffFor(n int) time.Duration {
	d := o.backoff
	for i := 0; i < n && d < o.maxBackoff; i++ {
		d *= 3
	}
	return min(d, o.maxBackoff)
}
