package main

import (
	"bytes"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy is a TCP proxy between ipa-oci and the registry. It throttles (or holds) what the
// registry sends back, and records what the client sent so tests can look at the HTTP requests
// (the registry speaks plain HTTP on loopback).
type slowProxy struct {
	Addr   string
	target string
	ln     net.Listener
	rate   atomic.Int64 // bytes per second towards the client; 0 = unlimited
	upRate atomic.Int64 // bytes per second towards the registry; 0 = unlimited
	held   atomic.Bool  // true: send nothing towards the client until released

	mu    sync.Mutex
	sent  bytes.Buffer // every byte clients sent, in arrival order per connection chunk
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{Addr: ln.Addr().String(), target: target, ln: ln}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *slowProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.upstream(c, s)
		go p.downstream(s, c)
	}
}

// upstream copies client -> registry at the configured rate, recording the bytes.
func (p *slowProxy) upstream(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		chunk := buf
		rate := p.upRate.Load()
		if rate > 0 && rate/50 < int64(len(chunk)) {
			chunk = buf[:max(rate/50, 1)]
		}
		n, err := c.Read(chunk)
		if n > 0 {
			p.mu.Lock()
			p.sent.Write(chunk[:n])
			p.mu.Unlock()
			if _, werr := s.Write(chunk[:n]); werr != nil {
				break
			}
			if rate > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
			}
		}
		if err != nil {
			break
		}
	}
	s.Close()
	c.Close()
}

// downstream copies registry -> client in small chunks at the configured rate.
func (p *slowProxy) downstream(s, c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		for p.held.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		chunk := buf
		rate := p.rate.Load()
		if rate > 0 && rate/50 < int64(len(chunk)) {
			chunk = buf[:max(rate/50, 1)]
		}
		n, err := s.Read(chunk)
		if n > 0 {
			for p.held.Load() {
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := c.Write(chunk[:n]); werr != nil {
				break
			}
			if rate > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
			}
		}
		if err != nil { // io.EOF or a closed connection
			break
		}
	}
	c.Close()
	s.Close()
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.held.Store(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

var requestLine = regexp.MustCompile(`(?m)^(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r$`)

// requests returns the request lines ("GET /v2/...") clients sent so far, and resets the log.
func (p *slowProxy) requests() (lines []string, raw string) {
	p.mu.Lock()
	raw = p.sent.String()
	p.sent.Reset()
	p.mu.Unlock()
	for _, m := range requestLine.FindAllStringSubmatch(raw, -1) {
		lines = append(lines, m[1]+" "+m[2])
	}
	return lines, raw
}

// rangeHeaders returns the Range header values in raw request bytes.
func rangeHeaders(raw string) []string {
	var out []string
	for _, l := range strings.Split(raw, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Range") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}
