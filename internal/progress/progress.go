// Package progress draws progress on a terminal with github.com/schollz/progressbar, the one
// library for it: Bar, the bar of one blob transfer (uploads in images/store, downloads in
// images/bootdir), and Status, the spinner line of a build (builder/). A nil *Bar or *Status
// draws nothing, so callers need no checks.
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

// Status is one status line on a terminal for work of unknown length (a build): a spinner,
// a description the caller replaces as the work moves on, and the elapsed time, drawn with
// progressbar's indeterminate mode. It is redrawn only when the caller says so (no timer), so
// a caller that clears it before writing a log line and updates it after gets log lines
// printed cleanly above it. A nil *Status draws nothing.
type Status struct {
	bar         *progressbar.ProgressBar
	shown, done bool
}

// NewStatus returns a status line drawn on w; nil when w is nil (no terminal).
func NewStatus(w io.Writer) *Status {
	if w == nil {
		return nil
	}
	return &Status{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w), progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0), // redraw on Update only: no goroutine writing between a Clear and a log line
		progressbar.OptionUseANSICodes(true), progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false))}
}

// Update sets the description and redraws the line (the spinner moves one step).
func (s *Status) Update(description string) {
	if s == nil || s.done {
		return
	}
	s.bar.Describe(description)
	s.shown = true
}

// Clear erases the line (before a log line is written); the next Update draws it again.
func (s *Status) Clear() {
	if s == nil || !s.shown {
		return
	}
	_ = s.bar.Clear()
	s.shown = false
}

// Done erases the line for good: later Updates draw nothing.
func (s *Status) Done() {
	if s == nil {
		return
	}
	s.Clear()
	s.done = true
	_ = s.bar.Exit()
}
