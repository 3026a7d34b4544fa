package images

import (
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"github.com/schollz/progressbar/v3"
)

// progressBar draws one transfer's progress on a terminal.
type progressBar struct{ bar *progressbar.ProgressBar }

func newProgressBar(w io.Writer, size int64, desc string) *progressBar {
	return &progressBar{bar: progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish())}
}

// follow advances the bar from go-containerregistry's progress updates until the channel closes.
func (p *progressBar) follow(updates <-chan v1.Update) {
	for u := range updates {
		_ = p.bar.Set64(u.Complete)
	}
}

// Write counts streamed bytes, so the bar can sit in an io.MultiWriter.
func (p *progressBar) Write(b []byte) (int, error) { return p.bar.Write(b) }

func (p *progressBar) finish() { _ = p.bar.Finish() }

func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

func openFile(path string) (io.ReadCloser, error) { return os.Open(path) }
