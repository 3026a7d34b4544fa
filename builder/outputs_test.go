package builder

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDownloadTimeouts: the release download never hangs on a server that accepts and says
// nothing, nor on one whose body stops arriving; a slow but steady body still completes.
func TestDownloadTimeouts(t *testing.T) {
	d := newHTTPDownloader(httpTimeouts{dial: 5 * time.Second, tlsHandshake: 5 * time.Second,
		responseHeader: 300 * time.Millisecond, idleRead: 300 * time.Millisecond})
	ctx := context.Background()

	// Accepts the connection, never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	defer func() {
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	dst := filepath.Join(t.TempDir(), "br.tar.gz")
	err = download(ctx, d, "http://"+silent.Addr().String()+"/br.tar.gz", dst, strings.Repeat("0", 64))
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("silent server: %v, want a response header timeout", err)
	}

	// Sends headers and a little, then stalls; and a slow but steady one.
	release := make(chan struct{})
	defer close(release)
	mux := http.NewServeMux()
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	body := strings.Repeat("x", 20)
	mux.HandleFunc("/steady", func(w http.ResponseWriter, r *http.Request) {
		for i := range body {
			w.Write([]byte(body[i : i+1]))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	err = download(ctx, d, base+"/stall", dst, strings.Repeat("0", 64))
	if err == nil || !strings.Contains(err.Error(), "no data received for 300ms") {
		t.Errorf("stalled body: %v, want the idle-read timeout", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a failed download left the file in place")
	}
	// Steady: 20 bytes over ~400 ms, longer than idleRead in total but never idle that long.
	d.idleRead = 2 * time.Second
	if err := download(ctx, d, base+"/steady", dst, sha256hex([]byte(body))); err != nil {
		t.Errorf("slow but steady download: %v", err)
	}
}
