package lockfixture

import (
	"crypto/sha256"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Index is a PEP 503 simple repository served by Go's net/http from a directory of wheel
// files: /simple/ lists the projects, /simple/<canonical name>/ links each file of a project
// with its #sha256= fragment (computed on every request, so a replaced file shows its new
// hash, as an index would after a re-upload) and data-requires-python, /files/<file> serves
// the bytes. It listens on 127.0.0.1: a builder container reaches it with host networking.
type Index struct {
	URL   string // the simple index, http://127.0.0.1:PORT/simple
	Files string // base URL of the files, http://127.0.0.1:PORT/files/
	dir   string
	srv   *httptest.Server

	mu       sync.Mutex
	reqPy    map[string]string // file -> Requires-Python
	hits     map[string]int    // request path -> count
	projects map[string]bool
}

// StartIndex serves the given wheels until the test ends.
func StartIndex(t testing.TB, wheels ...Wheel) *Index {
	t.Helper()
	ix := &Index{dir: t.TempDir(), reqPy: map[string]string{}, hits: map[string]int{}, projects: map[string]bool{}}
	for _, w := range wheels {
		ix.Put(t, w)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/", ix.serveSimple)
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		ix.count(r.URL.Path)
		name := strings.TrimPrefix(r.URL.Path, "/files/")
		if name == "" || strings.ContainsAny(name, "/\\") {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(ix.dir, name))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ix.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	ix.srv.Start()
	t.Cleanup(ix.srv.Close)
	ix.URL = ix.srv.URL + "/simple"
	ix.Files = ix.srv.URL + "/files/"
	return ix
}

// Put adds (or replaces, same file name) a wheel.
func (ix *Index) Put(t testing.TB, w Wheel) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ix.dir, w.FileName()), w.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ix.mu.Lock()
	ix.reqPy[w.FileName()] = w.RequiresPython
	ix.projects[Canonical(w.Name)] = true
	ix.mu.Unlock()
}

// PutFile adds a file that is not a wheel built here (an sdist, say) to project name.
func (ix *Index) PutFile(t testing.TB, name, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ix.dir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ix.mu.Lock()
	ix.projects[Canonical(name)] = true
	ix.mu.Unlock()
}

// URLOf is the download URL of a file.
func (ix *Index) URLOf(file string) string { return ix.Files + file }

// Hits is how many requests path (e.g. "/files/x.whl" or "/simple/x/") got.
func (ix *Index) Hits(path string) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.hits[path]
}

// FileHits is the number of downloads of all files.
func (ix *Index) FileHits() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := 0
	for p, c := range ix.hits {
		if strings.HasPrefix(p, "/files/") {
			n += c
		}
	}
	return n
}

func (ix *Index) count(p string) {
	ix.mu.Lock()
	ix.hits[p]++
	ix.mu.Unlock()
}

func (ix *Index) serveSimple(w http.ResponseWriter, r *http.Request) {
	ix.count(r.URL.Path)
	project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if project == "" {
		var names []string
		for p := range ix.projects {
			names = append(names, p)
		}
		sort.Strings(names)
		fmt.Fprintln(w, "<!DOCTYPE html><html><body>")
		for _, p := range names {
			fmt.Fprintf(w, "<a href=\"%s/\">%s</a>\n", p, p)
		}
		fmt.Fprintln(w, "</body></html>")
		return
	}
	if !ix.projects[project] {
		http.NotFound(w, r)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/") { // PEP 503: redirect to the URL with the slash
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return
	}
	entries, err := os.ReadDir(ix.dir)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>Links for %s</title></head><body><h1>Links for %s</h1>\n", project, project)
	for _, e := range entries {
		file := e.Name()
		if projectOf(file) != project {
			continue
		}
		data, err := os.ReadFile(filepath.Join(ix.dir, file))
		if err != nil {
			continue
		}
		attr := ""
		if rp := ix.reqPy[file]; rp != "" {
			attr = fmt.Sprintf(" data-requires-python=\"%s\"", html.EscapeString(rp))
		}
		fmt.Fprintf(w, "<a href=\"../../files/%s#sha256=%x\"%s>%s</a><br/>\n", file, sha256.Sum256(data), attr, file)
	}
	fmt.Fprintln(w, "</body></html>")
}

// projectOf is the canonical project name of a wheel or sdist file name.
func projectOf(file string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(file, ".whl"), ".tar.gz"), ".zip")
	if strings.HasSuffix(file, ".whl") {
		name, _, _ := strings.Cut(base, "-")
		return Canonical(name)
	}
	i := strings.LastIndex(base, "-")
	if i < 0 {
		return Canonical(base)
	}
	return Canonical(base[:i])
}
