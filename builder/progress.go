package builder

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// buildrootStepRE matches Buildroot's per-package step lines: ">>> host-ncurses 6.4 Building".
var buildrootStepRE = regexp.MustCompile(`^>>> (\S+)\s+(\S*)\s*(.*)$`)

// progressLine keeps one status line on a terminal: the Buildroot package being built. A nil
// *progressLine does nothing.
type progressLine struct {
	w       io.Writer
	current string
	shown   bool
}

func newProgressLine(w io.Writer) *progressLine {
	if w == nil {
		return nil
	}
	return &progressLine{w: w}
}

// clear erases the status line before a log line is printed.
func (p *progressLine) clear() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
	p.shown = false
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
	fmt.Fprintf(p.w, "\r\x1b[K[%s] %s", phase, p.current)
	p.shown = true
}

// done clears the status line for good.
func (p *progressLine) done() { p.clear() }
