package store_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// faultProxy sits between ipa-oci and a real registry and misbehaves on the requests chosen:
// blob downloads by default.
type faultProxy struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []seenRequest
	// fault for the next blob GETs whose path ends with blobSuffix (the digest hex), or for
	// the next requests with method faultMethod (if set) whose path ends with blobSuffix.
	blobSuffix  string
	faultMethod string
	fail500     int   // answer this many blob GETs with 500
	cutAfter    int64 // cut the connection after this many body bytes (once)
	corruptAt   int64 // flip the byte at this body offset (every time), -1 for none
}

type seenRequest struct {
	Method, Path, Range string
}

func newFaultProxy(t testing.TB, registryHost string) *faultProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registryHost)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &faultProxy{corruptAt: -1}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, seenRequest{r.Method, r.URL.Path, r.Header.Get("Range")})
		method := http.MethodGet
		if p.faultMethod != "" {
			method = p.faultMethod
		}
		isBlob := r.Method == method && p.blobSuffix != "" && strings.HasSuffix(r.URL.Path, p.blobSuffix)
		fail := isBlob && p.fail500 > 0
		if fail {
			p.fail500--
		}
		cut, corrupt := int64(0), int64(-1)
		if isBlob {
			cut, corrupt = p.cutAfter, p.corruptAt
			p.cutAfter = 0
		}
		p.mu.Unlock()
		switch {
		case fail:
			http.Error(w, "injected failure", http.StatusInternalServerError)
		case cut > 0 || corrupt >= 0:
			rp.ModifyResponse = nil
			rec := &faultWriter{ResponseWriter: w, cutAfter: cut, corruptAt: corrupt}
			rp.ServeHTTP(rec, r)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// Host is the proxy's host:port, to use in references instead of the registry's.
func (p *faultProxy) Host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *faultProxy) seen() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seenRequest(nil), p.requests...)
}

func (p *faultProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = nil
	p.blobSuffix, p.faultMethod, p.fail500, p.cutAfter, p.corruptAt = "", "", 0, 0, -1
}

func (p *faultProxy) set(f func(p *faultProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// faultWriter passes a response body through, flipping one byte or cutting the connection.
type faultWriter struct {
	http.ResponseWriter
	n         int64
	cutAfter  int64
	corruptAt int64
}

func (f *faultWriter) Write(b []byte) (int, error) {
	if f.cutAfter > 0 && f.n+int64(len(b)) > f.cutAfter {
		keep := f.cutAfter - f.n
		f.ResponseWriter.Write(b[:keep])
		if fl, ok := f.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	if f.corruptAt >= f.n && f.corruptAt < f.n+int64(len(b)) {
		c := append([]byte(nil), b...)
		c[f.corruptAt-f.n] ^= 0xff
		b = c
	}
	f.n += int64(len(b))
	return f.ResponseWriter.Write(b)
}

var _ io.Writer = (*faultWriter)(nil)
