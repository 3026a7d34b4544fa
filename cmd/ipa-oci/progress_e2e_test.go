package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// onTTY runs the binary with args on a pseudo-terminal (util-linux script), returning what
// the terminal showed.
func onTTY(t *testing.T, args ...string) string {
	t.Helper()
	line := ipaOCI
	for _, a := range args {
		line += " '" + a + "'"
	}
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ipa-oci %s on a tty: %v\n%q", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestE2EProgressOnTTY: pushing and pulling a 4 MiB initramfs through a proxy slowed to
// 2 MB/s draws a progress bar labelled with the blob's digest on a terminal; there is none with
// --log-format json on the terminal, nor without a terminal. Each case has its own files, so
// that each push really uploads.
func TestE2EProgressOnTTY(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script (util-linux) not found: scripts/setup-test-env.sh installs it")
	}
	reg := startRegistry(t)
	proxy := startProxy(t, reg.Host)
	proxy.rate.Store(2 << 20)
	proxy.upRate.Store(2 << 20)
	for i, c := range []struct {
		name    string
		json    bool
		tty     bool
		wantBar bool
	}{
		{"terminal", false, true, true},
		{"terminal, JSON logs", true, true, false},
		{"no terminal", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := amd64Files(t, uint64(120+i), 16<<10, 4<<20)
			ref := proxy.Addr + "/" + e2eRepo + ":progress-" + string(rune('a'+i))
			push := []string{"push", ref, "--kernel", f.kernelPath, "--initramfs", f.initrdPath, "--plain-http"}
			pull := []string{"pull", ref, "--dest", filepath.Join(t.TempDir(), "d"), "--plain-http"}
			if c.json {
				push, pull = append([]string{"--log-format", "json"}, push...), append([]string{"--log-format", "json"}, pull...)
			}
			for _, args := range [][]string{push, pull} {
				verb := args[0]
				if c.json {
					verb = args[2]
				}
				bar := verb + " " + sha256hex(f.initramfs)[:12]
				var out string
				if c.tty {
					out = onTTY(t, args...)
				} else {
					r := ipa(t, args...)
					if r.code != 0 {
						t.Fatalf("ipa-oci %s: exit %d: %s", verb, r.code, r.stderr)
					}
					out = r.stderr
				}
				if got := strings.Contains(out, bar); got != c.wantBar {
					t.Errorf("%s: progress bar %q shown: %v, want %v; output:\n%q", verb, bar, got, c.wantBar, out)
				}
			}
		})
	}
}
