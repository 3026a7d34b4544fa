package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyRun is the binary running on a pseudo-terminal the test holds the master side of: it
// types keys and reads the screen, as a user at a terminal would.
type ptyRun struct {
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	screen bytes.Buffer
	done   chan struct{} // closed when the master side reads EOF/EIO (the terminal closed)
	cancel context.CancelFunc
}

// openPTY opens a pseudo-terminal pair of cols x rows.
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// startOnPTY starts the binary with args on a new terminal of cols x rows (its controlling
// terminal, stdin, stdout and stderr). limit is a safety net, never a timed assertion.
func startOnPTY(t *testing.T, cols, rows uint16, limit time.Duration, args ...string) *ptyRun {
	t.Helper()
	master, slave := openPTY(t, cols, rows)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	cmd := exec.CommandContext(ctx, ipaOCI, args...)
	cmd.Env = append(cleanEnv(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	slave.Close()
	p := &ptyRun{cmd: cmd, master: master, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.screen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait(); master.Close() })
	return p
}

// terminalControls are the escape sequences curses programs draw with: colours, cursor
// moves, character set switches.
var terminalControls = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]|[\x0e\x0f]`)

// waitFor waits until the terminal has shown s (after what forget dropped), escape sequences
// left out.
func (p *ptyRun) waitFor(t *testing.T, s string) {
	t.Helper()
	for {
		if strings.Contains(p.plain(), s) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("the terminal closed before showing %q; it showed:\n%s", s, p.text())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forget drops what the terminal showed so far, so waitFor sees only what comes next.
func (p *ptyRun) forget() {
	p.mu.Lock()
	p.screen.Reset()
	p.mu.Unlock()
}

// plain is what the terminal showed, escape sequences left out.
func (p *ptyRun) plain() string { return terminalControls.ReplaceAllString(p.text(), "") }

// text is what the terminal showed, escape sequences included.
func (p *ptyRun) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.screen.String()
}

// send types keys.
func (p *ptyRun) send(t *testing.T, keys string) {
	t.Helper()
	if _, err := p.master.WriteString(keys); err != nil {
		t.Fatal(err)
	}
}

// resize changes the terminal's size (the kernel sends SIGWINCH to its foreground processes).
func (p *ptyRun) resize(t *testing.T, cols, rows uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
}

// canonical says whether the terminal is back in canonical mode with echo (not raw).
func (p *ptyRun) canonical(t *testing.T) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ICANON != 0 && tio.Lflag&unix.ECHO != 0
}

// wait waits for the process and returns its exit code.
func (p *ptyRun) wait(t *testing.T) int {
	t.Helper()
	err := p.cmd.Wait()
	<-p.done
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("%v\n%s", err, p.text())
	return -1
}
