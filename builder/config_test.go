package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLoadExampleConfig(t *testing.T) {
	c, err := LoadConfig("../ipa-oci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	if c.External != filepath.Join(root, "buildroot-external") || c.KernelConfig != filepath.Join(root, "kernel-config") {
		t.Errorf("paths not made absolute: %q %q", c.External, c.KernelConfig)
	}
	if c.Defconfig != "ipa_x86_64_defconfig" || c.Arch != "amd64" || len(c.Buildroot.SHA256) != 64 ||
		!strings.HasPrefix(c.Buildroot.URL, "https://buildroot.org/downloads/") || c.IPA.Repo == "" || c.Builder.Image == "" {
		t.Errorf("example config: %+v", c)
	}
}

func TestLoadConfigRejectsUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ipa-oci.yaml")
	os.WriteFile(p, []byte("defconfig: x\nbuildroot:\n  sha: abc\n"), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "sha") {
		t.Errorf("unknown field accepted: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressLine(&buf)
	p.update("build", "gcc -c foo.c")
	if buf.Len() != 0 {
		t.Errorf("status drawn before any package step: %q", buf.String())
	}
	p.update("build", cleanLine("\x1b[7m>>> host-ncurses 6.4 Building\x1b[27m\n"))
	p.clear()
	p.update("build", "checking for gcc... yes")
	// Drawn (spinner, status, elapsed time), erased before the log line, drawn again after it.
	draw := `\r\S+ \[build\] host-ncurses 6\.4: Building +\[[0-9hms]+\] \x1b\[0K`
	if want := regexp.MustCompile("^" + draw + `\x1b\[2K\r` + draw + "$"); !want.MatchString(buf.String()) {
		t.Errorf("progress output\n got %q\nwant %s", buf.String(), want)
	}
	var nilp *progressLine
	nilp.update("build", ">>> x 1 Building") // no terminal: no-op, no panic
}

func TestCompareOutputs(t *testing.T) {
	rec := []OutputFile{{Name: KernelName, SHA256: "sha256:a"}, {Name: InitramfsName, SHA256: "sha256:b"}}
	got := CompareOutputs(rec, []OutputFile{{Name: KernelName, SHA256: "sha256:a"}, {Name: InitramfsName, SHA256: "sha256:c"}})
	if !got[0].Match || got[1].Match || got[1].Got != "sha256:c" {
		t.Errorf("CompareOutputs = %+v", got)
	}
	if got := CompareOutputs(rec, nil); got[0].Match || got[0].Got != "" {
		t.Errorf("missing output matched: %+v", got)
	}
}

func TestTreeHash(t *testing.T) {
	d := t.TempDir()
	mustWrite(t, filepath.Join(d, "a", "f"), "x")
	h1 := mustTreeHash(t, d)
	os.Chtimes(filepath.Join(d, "a", "f"), time.Unix(12345, 0), time.Unix(12345, 0))
	mustWrite(t, filepath.Join(d, ".git", "HEAD"), "ref")
	if h := mustTreeHash(t, d); h != h1 {
		t.Error("mtime or .git changed the tree hash")
	}
	os.Chmod(filepath.Join(d, "a", "f"), 0o755)
	if h := mustTreeHash(t, d); h == h1 {
		t.Error("executable bit did not change the tree hash")
	}
	os.Chmod(filepath.Join(d, "a", "f"), 0o644)
	mustWrite(t, filepath.Join(d, "a", "f"), "y")
	if h := mustTreeHash(t, d); h == h1 {
		t.Error("content did not change the tree hash")
	}
}
