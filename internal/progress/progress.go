// Package progress draws the progress bar of one blob transfer on a terminal
// (github.com/schollz/progressbar). A nil *Bar draws nothing, so callers need no checks.
package progress

import (
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/schollz/progressbar/v3"
)

// Bar is one transfer's progress bar.
type Bar struct{ bar *progressbar.ProgressBar }

// New returns a bar of size bytes labelled "verb <12 hex digits of d>", drawn on w; nil when w
// is nil (no terminal).
func New(w io.Writer, size int64, verb string, d digest.Digest) *Bar {
	if w == nil {
		return nil
	}
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return &Bar{bar: progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(verb+" "+e),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish())}
}

// Write counts streamed bytes, so the bar can sit in an io.MultiWriter.
func (b *Bar) Write(p []byte) (int, error) {
	if b == nil {
		return len(p), nil
	}
	return b.bar.Write(p)
}

// Set moves the bar to n bytes done.
func (b *Bar) Set(n int64) {
	if b != nil {
		_ = b.bar.Set64(n)
	}
}

// Finish clears the bar.
func (b *Bar) Finish() {
	if b != nil {
		_ = b.bar.Finish()
	}
}
