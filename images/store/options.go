package store

import (
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
)

// Option configures how Parse's targets reach registries and layouts.
type Option func(*options)

type options struct {
	plainHTTP bool
	keychain  authn.Keychain
	transport http.RoundTripper
	log       logrus.FieldLogger
	progress  io.Writer
	userAgent string
	retry     policy
}

func makeOptions(opts ...Option) *options {
	discard := logrus.New()
	discard.SetOutput(io.Discard)
	o := &options{
		keychain:  authn.DefaultKeychain,
		transport: defaultTransport(),
		log:       discard,
		userAgent: "ipa-oci",
		retry:     defaultPolicy(),
	}
	for _, opt := range opts {
		opt(o)
	}
	o.retry.log = o.log
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

// WithTransport sets the HTTP transport under every registry request.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithLogger sets the structured logger (default: silent).
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// WithProgress draws progress bars for blob uploads on w (nil: none).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// WithRetry sets how often a failed registry operation (one request, one blob upload, or one
// blob download, which resumes where it broke) is retried, and the first wait; the wait triples
// after each attempt up to 10s. Default: 4 retries after waiting 1s, 3s, 9s and 10s, so at most
// 5 attempts and 23s of waiting per operation. Retried: 5xx, 429, 408 and broken connections.
// A blob download that received bytes before it broke starts its count afresh.
func WithRetry(retries int, backoff time.Duration) Option {
	return func(o *options) { o.retry.retries, o.retry.backoff = retries, backoff }
}
