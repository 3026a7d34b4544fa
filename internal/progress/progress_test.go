package progress

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestStatusDrawsClearsAndStaysQuiet: a status line shows its description behind a spinner,
// Clear erases the line (so a log line written next starts at column 0 of a clean line), the
// next Update draws it again with the new description, and a nil Status (no terminal) writes
// nothing at all.
func TestStatusDrawsClearsAndStaysQuiet(t *testing.T) {
	var out bytes.Buffer
	s := NewStatus(&out)
	s.Update("[build] host-ncurses 6.4: Building")
	first := out.String()
	if !regexp.MustCompile(`^\r\S+ \[build\] host-ncurses 6\.4: Building .*\x1b\[0K$`).MatchString(first) {
		t.Fatalf("first draw: %q", first)
	}
	out.Reset()
	s.Clear()
	if got := out.String(); got != "\x1b[2K\r" {
		t.Fatalf("Clear wrote %q, want the erase-line sequence", got)
	}
	out.Reset()
	s.Clear() // nothing drawn: nothing to erase
	s.Update("[build] busybox 1.37.0: Installing")
	if got := out.String(); !strings.HasPrefix(got, "\r") || !strings.Contains(got, "[build] busybox 1.37.0: Installing") || strings.Contains(got, "ncurses") {
		t.Fatalf("redraw after Clear: %q", got)
	}
	out.Reset()
	s.Done()
	s.Update("late")
	if got := out.String(); got != "\x1b[2K\r" {
		t.Fatalf("Done then Update wrote %q, want only the erase", got)
	}

	var none *Status = NewStatus(nil)
	none.Update("x")
	none.Clear()
	none.Done()
	if none != nil {
		t.Fatal("NewStatus(nil) is not nil")
	}
}
