package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// FileServer is a TFTP or HTTP server process serving a directory.
type FileServer struct {
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// StartTFTPD starts Debian's tftpd-hpa serving root on a free loopback UDP port, as a PXE host
// runs it: --secure (chroot into root) and switched to the unprivileged user nobody, so it
// serves only what any user may read. It runs in the foreground (-L) until the test ends.
// It needs root (chroot, setuid) and the tftpd-hpa package (scripts/setup-test-env.sh).
func StartTFTPD(t testing.TB, root string) *FileServer {
	t.Helper()
	bin, err := exec.LookPath("in.tftpd")
	if err != nil {
		bin = "/usr/sbin/in.tftpd"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("in.tftpd not found: install tftpd-hpa (scripts/setup-test-env.sh does)")
		}
	}
	port := FreeUDPPort(t)
	s := startServer(t, "in.tftpd", bin, "-L", "-s", "-u", "nobody", "-a", fmt.Sprintf("127.0.0.1:%d", port), root)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.waitFor(t, func() bool { return udpListening(port) })
	return s
}

// StartHTTPD starts BusyBox's httpd serving root on a free loopback TCP port as the
// unprivileged user nobody (it switches user before it serves anything), until the test ends.
func StartHTTPD(t testing.TB, root string) *FileServer {
	t.Helper()
	bin, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found: install busybox-static (scripts/setup-test-env.sh does)")
	}
	port := FreePort(t)
	s := startServer(t, "busybox httpd", bin, "httpd", "-f", "-u", "nobody:nogroup", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", root)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

func startServer(t testing.TB, name, bin string, args ...string) *FileServer {
	t.Helper()
	s := &FileServer{cmd: exec.Command(bin, args...), log: &bytes.Buffer{}}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if t.Failed() && s.log.Len() > 0 {
			t.Logf("%s output:\n%s", name, s.log.String())
		}
	})
	return s
}

// waitFor polls ready until it holds (safety deadline 30 s, not a timing assertion).
func (s *FileServer) waitFor(t testing.TB, ready func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !ready() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not start listening on %s: %s", s.cmd.Path, s.Addr, s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FreeUDPPort returns a free UDP port on 127.0.0.1.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// udpListening reports whether a socket is bound to 127.0.0.1:port (/proc/net/udp).
func udpListening(port int) bool {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[1] == want {
			return true
		}
	}
	return false
}
