package bootdir

import (
	"io"

	"github.com/sirupsen/logrus"
)

// Option configures Pull.
type Option func(*options)

type options struct {
	log      logrus.FieldLogger
	progress io.Writer
}

func makeOptions(opts ...Option) *options {
	discard := logrus.New()
	discard.SetOutput(io.Discard)
	o := &options{log: discard}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// WithLogger sets the structured logger (default: silent).
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// WithProgress draws progress bars for blob downloads on w (nil: none).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }
