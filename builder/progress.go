package builder

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/progress"
)

// buildrootStepRE matches Buildroot's per-package step lines: ">>> host-ncurses 6.4 Building".
var buildrootStepRE = regexp.MustCompile(`^>>> (\S+)\s+(\S*)\s*(.*)$`)

// progressLine keeps one status line on a terminal (internal/progress.Status): the phase and
// the Buildroot package step being run. A nil *progressLine does nothing.
type progressLine struct {
	status  *progress.Status
	current string
}

// newProgressLine draws on w, a terminal; nil when w is nil.
func newProgressLine(w io.Writer) *progressLine {
	if w == nil {
		return nil
	}
	return &progressLine{status: progress.NewStatus(w)}
}

// clear erases the status line before a log line is printed.
func (p *progressLine) clear() {
	if p != nil {
		p.status.Clear()
	}
}

// update takes a log line; Buildroot step lines change the status, which is then redrawn.
func (p *progressLine) update(phase, line string) {
	if p == nil {
		return
	}
	if m := buildrootStepRE.FindStringSubmatch(line); m != nil {
		p.current = strings.TrimSpace(fmt.Sprintf("%s %s: %s", m[1], m[2], m[3]))
	}
	if p.current == "" {
		return
	}
	p.status.Update(fmt.Sprintf("[%s] %s", phase, p.current))
}

// done clears the status line for good.
func (p *progressLine) done() {
	if p != nil {
		p.status.Done()
	}
}
