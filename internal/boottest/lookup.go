package boottest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GuestHostAddr is the address under which a QEMU user-networking guest reaches the host's
// loopback interface.
const GuestHostAddr = "10.0.2.2"

// Lookup is one agent lookup request (GET /v1/lookup?addresses=...).
type Lookup struct {
	Time       time.Time
	Addresses  []string // MACs, lower case, in request order
	RequestID  string   // X-OpenStack-Request-ID header
	APIVersion string   // X-OpenStack-Ironic-API-Version header
	UserAgent  string
}

// HasMAC reports whether the lookup carried mac (case-insensitive).
func (l Lookup) HasMAC(mac string) bool {
	for _, a := range l.Addresses {
		if strings.EqualFold(a, mac) {
			return true
		}
	}
	return false
}

// Report is one POST to the inspection callback (/v1/continue) or the stand-in's report
// endpoint (/v1/ipa-standin/report): the stand-in agent sends "key: value" lines; a real IPA
// sends JSON, kept in Body.
type Report struct {
	Time   time.Time
	Path   string
	Body   string
	Fields map[string]string // last value of each "key: value" line
}

// LookupServer is a minimal stand-in for the Ironic API as the agent sees it during lookup:
// it answers GET /v1/lookup with a node, POST /v1/heartbeat/<uuid> with 202, and records
// inspection or stand-in reports (POST /v1/continue, /v1/ipa-standin/report).
type LookupServer struct {
	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	lookups []Lookup
	reports []Report
	changed chan struct{} // closed and replaced on every new record
}

// NewLookupServer starts a LookupServer on 127.0.0.1 with a free port. Close it when done.
func NewLookupServer() (*LookupServer, error) { return NewLookupServerAt("127.0.0.1:0") }

// NewLookupServerAt is NewLookupServer listening on addr (host:port), for callers that must
// know the port before the server starts, e.g. to write it into an iPXE script.
func NewLookupServerAt(addr string) (*LookupServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lookup server: listen on %s: %w", addr, err)
	}
	s := &LookupServer{ln: ln, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lookup", s.lookup)
	mux.HandleFunc("POST /v1/heartbeat/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/continue", s.report)
	mux.HandleFunc("POST /v1/ipa-standin/report", s.report)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// Port returns the TCP port the server listens on.
func (s *LookupServer) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// GuestURL returns the server's base URL as seen from a QEMU user-networking guest
// (http://10.0.2.2:<port>), the value for ipa-api-url=.
func (s *LookupServer) GuestURL() string {
	return fmt.Sprintf("http://%s:%d", GuestHostAddr, s.Port())
}

// Close stops the server.
func (s *LookupServer) Close() error { return s.srv.Close() }

func (s *LookupServer) lookup(w http.ResponseWriter, r *http.Request) {
	var addrs []string
	for _, a := range strings.Split(r.URL.Query().Get("addresses"), ",") {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			addrs = append(addrs, a)
		}
	}
	s.record(func() {
		s.lookups = append(s.lookups, Lookup{
			Time:       time.Now(),
			Addresses:  addrs,
			RequestID:  r.Header.Get("X-OpenStack-Request-ID"),
			APIVersion: r.Header.Get("X-OpenStack-Ironic-API-Version"),
			UserAgent:  r.UserAgent(),
		})
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"node": map[string]any{
			"uuid":                 "00000000-0000-4000-8000-00000000beef",
			"properties":           map[string]any{},
			"instance_info":        map[string]any{},
			"driver_internal_info": map[string]any{},
		},
		"config": map[string]any{"heartbeat_timeout": 300, "agent_token": "ipa-oci-test-token"},
	})
}

func (s *LookupServer) report(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.ContainsAny(k, " {\"") {
			fields[k] = strings.TrimSpace(v)
		}
	}
	s.record(func() {
		s.reports = append(s.reports, Report{Time: time.Now(), Path: r.URL.Path, Body: string(body), Fields: fields})
	})
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "{}")
}

func (s *LookupServer) record(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Lookups returns a copy of the lookups received so far.
func (s *LookupServer) Lookups() []Lookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Lookup(nil), s.lookups...)
}

// Reports returns a copy of the reports received so far.
func (s *LookupServer) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Report(nil), s.reports...)
}

// WaitLookup waits for a lookup whose addresses include mac (any MAC when mac is "").
func (s *LookupServer) WaitLookup(ctx context.Context, mac string) (Lookup, error) {
	for {
		s.mu.Lock()
		for _, l := range s.lookups {
			if mac == "" || l.HasMAC(mac) {
				s.mu.Unlock()
				return l, nil
			}
		}
		ch := s.changed
		n := len(s.lookups)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Lookup{}, fmt.Errorf("no lookup carrying MAC %q arrived (%d other lookups): %w", mac, n, ctx.Err())
		case <-ch:
		}
	}
}

// WaitReport waits for a report for which match returns true.
func (s *LookupServer) WaitReport(ctx context.Context, match func(Report) bool) (Report, error) {
	for {
		s.mu.Lock()
		for _, r := range s.reports {
			if match(r) {
				s.mu.Unlock()
				return r, nil
			}
		}
		ch := s.changed
		var last string
		if len(s.reports) > 0 {
			last = s.reports[len(s.reports)-1].Body
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Report{}, fmt.Errorf("no matching report arrived (last one: %q): %w", last, ctx.Err())
		case <-ch:
		}
	}
}
