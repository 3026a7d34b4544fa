package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestE2EBadInput feeds ipa-oci one kind of bad input per subtest. Each must fail with exit
// code 1 and one error line naming the problem, and a destination that already serves a good
// version must keep serving it: same bytes, same inodes, same symlink targets.
func TestE2EBadInput(t *testing.T) {
	reg := startRegistry(t)
	good := amd64Files(t, 21, 32<<10, 64<<10)
	goodRef := reg.Host + "/" + e2eRepo + ":good"
	push(t, goodRef, good, "--ipa-version", "10.1.0")

	// served returns a destination holding the good version, and its snapshot.
	served := func(t *testing.T) (string, map[string]node) {
		dir := filepath.Join(t.TempDir(), "ipa")
		mustOK(t, "pull", goodRef, "--dest", dir, "--plain-http")
		return dir, snapshot(t, dir)
	}
	// resumable names the partial file a failed pull may keep: the good kernel of the hand-made
	// indexes below, whose transfer is cancelled when its sibling fails and stays resumable.
	var resumable string
	// pullFails pulls ref into a served directory and checks the failure.
	pullFails := func(t *testing.T, ref, wantErr string) {
		t.Helper()
		dir, before := served(t)
		r := ipa(t, "pull", ref, "--dest", dir, "--plain-http", "--log-level", "error")
		wantFailure(t, r, 1, wantErr)
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
		assertUntouched(t, dir, before, nil)
		assertServes(t, dir, good)
		parts, _ := filepath.Glob(filepath.Join(dir, ".ipa-oci", "partial", "*"))
		for _, p := range parts {
			if filepath.Base(p) != resumable {
				t.Errorf("partial file of a failed blob left after a verification failure: %v", p)
			}
		}
		sha256sumCheck(t, dir)
	}

	t.Run("kernel is not a bzImage", func(t *testing.T) {
		f := writeFiles(t, payload(22, 64<<10), initramfsBytes(23, 1024))
		ref := reg.Host + "/" + e2eRepo + ":not-a-kernel"
		r := ipa(t, "push", ref, "--kernel", f.kernelPath, "--initramfs", f.initrdPath, "--plain-http")
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: push %s: kernel %s: not a Linux bzImage or arm64 Image (no kernel header magic); pass the kernel build's bzImage/Image", ref, f.kernelPath))
		if d := headManifest(t, reg.Host, e2eRepo, "not-a-kernel"); d != "" {
			t.Errorf("a refused push created the tag (%s)", d)
		}
	})

	t.Run("initramfs is not a cpio", func(t *testing.T) {
		for name, data := range map[string][]byte{
			"random": payload(24, 4096),
			"tar":    append([]byte("ustar\x0000"), payload(25, 600)...),
			"empty":  {},
		} {
			f := writeFiles(t, kernelBytes(26, 4096), data)
			ref := reg.Host + "/" + e2eRepo + ":not-a-cpio"
			r := ipa(t, "push", ref, "--kernel", f.kernelPath, "--initramfs", f.initrdPath, "--plain-http")
			t.Run(name, func(t *testing.T) {
				wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: push %s: initramfs %s: not a cpio archive (plain, gzip, xz or zstd); pass Buildroot's rootfs.cpio.xz", ref, f.initrdPath))
			})
		}
		if d := headManifest(t, reg.Host, e2eRepo, "not-a-cpio"); d != "" {
			t.Errorf("a refused push created the tag (%s)", d)
		}
	})

	t.Run("missing tag", func(t *testing.T) {
		ref := reg.Host + "/" + e2eRepo + ":no-such-tag"
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: %s/%s:no-such-tag not found: check the tag, or push it first",
			ref, reg.Host, e2eRepo))
	})

	t.Run("unreachable registry", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: the client retries a refused connection with backoff for 23 s before it gives up")
		}
		t.Parallel()
		host := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		ref := host + "/" + e2eRepo + ":good"
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: resolve %s/%s:good: registry %s: Get \"https://%s/v2/\": dial tcp %s: connect: connection refused; Get \"http://%s/v2/\": dial tcp %s: connect: connection refused (check the host, --plain-http for HTTP registries, and credentials in the docker config)",
			ref, host, e2eRepo, host, host, host, host, host))
	})

	t.Run("dest is a regular file", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "ipa")
		if err := os.WriteFile(dest, []byte("not a directory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, filepath.Dir(dest))
		r := ipa(t, "pull", goodRef, "--dest", dest, "--plain-http")
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: pull %s: dest %s: not a directory; pass the directory your TFTP/HTTP server serves", goodRef, dest))
		assertUntouched(t, filepath.Dir(dest), before, nil)
		r = ipa(t, "rollback", "--dest", dest)
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: rollback: dest %s: not a directory; pass the directory your TFTP/HTTP server serves", dest))
		assertUntouched(t, filepath.Dir(dest), before, nil)
	})

	// Indexes assembled by hand with raw registry requests, each with one bad initramfs manifest.
	raw := &rawRegistry{t: t, host: reg.Host, repo: e2eRepo}
	kernelLayer := raw.blob(kernelBytes(30, 16<<10), artifact.ArtifactTypeKernel, "ironic-python-agent.kernel")
	kernelManifest := raw.manifest(artifact.ArtifactTypeKernel, kernelLayer)
	resumable = kernelLayer.Digest.Encoded() + ".part"
	badIndex := func(tag string, initrdManifest ocispec.Descriptor) string {
		raw.index(tag, kernelManifest, initrdManifest)
		return reg.Host + "/" + e2eRepo + ":" + tag
	}
	initrdLayer := func(seed uint64, size int) ocispec.Descriptor {
		return raw.blob(initramfsBytes(seed, size), artifact.ArtifactTypeInitramfs, "ironic-python-agent.initramfs")
	}

	t.Run("hand-made good index pulls", func(t *testing.T) {
		ref := badIndex("hand-made", raw.manifest(artifact.ArtifactTypeInitramfs, initrdLayer(31, 8<<10)))
		dir := filepath.Join(t.TempDir(), "ipa")
		if out := mustOK(t, "pull", ref, "--dest", dir, "--plain-http"); !strings.HasPrefix(out, "updated amd64 sha256:") {
			t.Errorf("pull of the hand-made index: %q", out)
		}
		sha256sumCheck(t, dir)
	})

	t.Run("manifest with 0 layers", func(t *testing.T) {
		m := raw.manifest(artifact.ArtifactTypeInitramfs)
		ref := badIndex("zero-layers", m)
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: manifest %s: 0 layers: an ipa-oci artifact manifest has exactly one", ref, m.Digest))
	})

	t.Run("manifest with 2 layers", func(t *testing.T) {
		m := raw.manifest(artifact.ArtifactTypeInitramfs, initrdLayer(32, 4096), initrdLayer(33, 4096))
		ref := badIndex("two-layers", m)
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: manifest %s: 2 layers: an ipa-oci artifact manifest has exactly one", ref, m.Digest))
	})

	t.Run("unknown artifactType", func(t *testing.T) {
		m := raw.manifest("application/vnd.example.firmware.v1", initrdLayer(34, 4096))
		ref := badIndex("unknown-type", m)
		pullFails(t, ref, fmt.Sprintf(`ipa-oci: pull %s: manifest %s: unknown artifactType "application/vnd.example.firmware.v1": want %s or %s`,
			ref, m.Digest, artifact.ArtifactTypeKernel, artifact.ArtifactTypeInitramfs))
	})

	for i, title := range []string{"../../etc/cron.d/evil", "sub/ironic-python-agent.initramfs", "..", "/ironic-python-agent.initramfs"} {
		t.Run("title "+title, func(t *testing.T) {
			l := initrdLayer(uint64(40+i), 4096)
			l.Annotations[ocispec.AnnotationTitle] = title
			m := raw.manifest(artifact.ArtifactTypeInitramfs, l)
			ref := badIndex(fmt.Sprintf("bad-title-%d", i), m)
			pullFails(t, ref, fmt.Sprintf(`ipa-oci: pull %s: manifest %s: layer title %q: not a plain file name (no '/', '..' or NUL)`, ref, m.Digest, title))
		})
	}

	t.Run("blob larger than its descriptor", func(t *testing.T) {
		l := initrdLayer(50, 64<<10)
		l.Size -= 100
		m := raw.manifest(artifact.ArtifactTypeInitramfs, l)
		ref := badIndex("blob-too-large", m)
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: ironic-python-agent.initramfs: blob %s is larger than its descriptor's %d bytes: digest mismatch", ref, l.Digest, l.Size))
	})

	t.Run("blob smaller than its descriptor", func(t *testing.T) {
		l := initrdLayer(51, 64<<10)
		l.Size += 100
		m := raw.manifest(artifact.ArtifactTypeInitramfs, l)
		ref := badIndex("blob-too-small", m)
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: ironic-python-agent.initramfs: blob %s: the registry's blob ends at %d bytes, descriptor says %d: digest mismatch", ref, l.Digest, l.Size-100, l.Size))
	})

	t.Run("wrong digest: registry serves other bytes", func(t *testing.T) {
		data := initramfsBytes(52, 64<<10)
		l := raw.blob(data, artifact.ArtifactTypeInitramfs, "ironic-python-agent.initramfs")
		m := raw.manifest(artifact.ArtifactTypeInitramfs, l)
		ref := badIndex("tampered-blob", m)
		// Flip one byte of the blob in the registry's storage: it now serves bytes whose
		// digest is not the one the descriptor names.
		path := filepath.Join(reg.Storage, "docker", "registry", "v2", "blobs", "sha256", l.Digest.Encoded()[:2], l.Digest.Encoded(), "data")
		stored, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(stored, data) {
			t.Fatalf("registry storage %s: %v (layout changed?)", path, err)
		}
		stored[1000] ^= 0x01
		if err := os.WriteFile(path, stored, 0o644); err != nil {
			t.Fatal(err)
		}
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: ironic-python-agent.initramfs: blob %s: content has digest %s (tampered or corrupted in transit): digest mismatch", ref, l.Digest, digest.FromBytes(stored)))
	})

	t.Run("index entry with the wrong manifest size", func(t *testing.T) {
		m := raw.manifest(artifact.ArtifactTypeInitramfs, initrdLayer(53, 4096))
		real := m.Size
		m.Size += 7
		ref := badIndex("wrong-manifest-size", m)
		pullFails(t, ref, fmt.Sprintf("ipa-oci: pull %s: manifest %s: %d bytes, index says %d", ref, m.Digest, real, m.Size))
	})

	t.Run("index without the architecture", func(t *testing.T) {
		ref := reg.Host + "/" + e2eRepo + ":good"
		dir, before := served(t)
		r := ipa(t, "pull", ref, "--dest", dir, "--arch", "arm64", "--plain-http", "--log-level", "error")
		d := headManifest(t, reg.Host, e2eRepo, "good")
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: pull %s: no kernel for linux/arm64 in index %s (platforms: linux/amd64)", ref, d))
		assertUntouched(t, dir, before, nil)
		r = ipa(t, "pull", ref, "--dest", dir, "--arch", "riscv64", "--plain-http")
		wantFailure(t, r, 1, fmt.Sprintf(`ipa-oci: pull %s: architecture "riscv64": use amd64 or arm64`, ref))
		assertUntouched(t, dir, before, nil)
	})

	t.Run("tag holding a single manifest instead of an index", func(t *testing.T) {
		m := raw.manifest(artifact.ArtifactTypeInitramfs, initrdLayer(54, 4096))
		raw.put("manifests/not-an-index", ocispec.MediaTypeImageManifest, raw.fetched[m.Digest])
		ref := reg.Host + "/" + e2eRepo + ":not-an-index"
		pullFails(t, ref, fmt.Sprintf(`ipa-oci: pull %s: %s/%s:%s holds a %q, not an OCI image index: use a tag that ipa-oci pushed`,
			ref, reg.Host, e2eRepo, m.Digest, ocispec.MediaTypeImageManifest))
	})
}

// rawRegistry writes blobs and manifests with plain registry API requests, so tests can
// assemble what ipa-oci push would never write.
type rawRegistry struct {
	t          *testing.T
	host, repo string
	fetched    map[digest.Digest][]byte // manifests written, by digest
}

// blob uploads data (monolithic POST + PUT) and returns a layer descriptor for it.
func (r *rawRegistry) blob(data []byte, mediaType, title string) ocispec.Descriptor {
	r.t.Helper()
	d := digest.FromBytes(data)
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", r.host, r.repo), "", nil)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		r.t.Fatalf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		r.t.Fatal(err)
	}
	u := (&url.URL{Scheme: "http", Host: r.host}).ResolveReference(loc)
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		r.t.Fatalf("upload blob %s: %s %s", d, resp.Status, body)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data)),
		Annotations: map[string]string{ocispec.AnnotationTitle: title}}
}

// put PUTs a manifest body under path ("manifests/<ref>") and returns the status and body.
func (r *rawRegistry) put(path, mediaType string, body []byte) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/%s", r.host, r.repo, path), bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// manifest writes an artifact manifest with the empty config and the given layers.
func (r *rawRegistry) manifest(artifactType string, layers ...ocispec.Descriptor) ocispec.Descriptor {
	r.t.Helper()
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	r.blob([]byte("{}"), ocispec.MediaTypeEmptyJSON, "")
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: ocispec.DescriptorEmptyJSON, Layers: layers}
	m.Config.Data = nil
	b, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	d := r.manifestRaw(string(b))
	if d.Digest == "" {
		r.t.Fatalf("the registry refused manifest %s", b)
	}
	d.ArtifactType = artifactType
	return d
}

// manifestRaw PUTs a manifest by digest; a zero descriptor means the registry refused it.
func (r *rawRegistry) manifestRaw(body string) ocispec.Descriptor {
	r.t.Helper()
	d := digest.FromString(body)
	code, resp := r.put("manifests/"+d.String(), ocispec.MediaTypeImageManifest, []byte(body))
	if code != http.StatusCreated {
		r.t.Logf("PUT manifest: %d %s", code, resp)
		return ocispec.Descriptor{}
	}
	if r.fetched == nil {
		r.fetched = map[digest.Digest][]byte{}
	}
	r.fetched[d] = []byte(body)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(body))}
}

// index tags an amd64 index listing the kernel and initramfs manifests.
func (r *rawRegistry) index(tag string, kernel, initramfs ocispec.Descriptor) {
	r.t.Helper()
	var entries []ocispec.Descriptor
	for c, m := range map[artifact.Component]ocispec.Descriptor{artifact.Kernel: kernel, artifact.Initramfs: initramfs} {
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
		m.Annotations = map[string]string{artifact.AnnotationComponent: string(c)}
		entries = append(entries, m)
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
	b, err := json.Marshal(idx)
	if err != nil {
		r.t.Fatal(err)
	}
	if code, resp := r.put("manifests/"+tag, ocispec.MediaTypeImageIndex, b); code != http.StatusCreated {
		r.t.Fatalf("PUT index %s: %d %s", tag, code, resp)
	}
}

// TestE2EMakeOptionHint: the builder library refuses a make option in its own words (no CLI
// flag in them, builder.ErrMakeOption), and the CLI adds the flag hint to that one line.
func TestE2EMakeOptionHint(t *testing.T) {
	r := ipa(t, "make", "--", "-j4")
	wantFailure(t, r, 1, "ipa-oci: make option \"-j4\": only targets and VAR=VALUE are passed to make, e.g. V=1 for verbose output (-s is --silent; other options: `ipa-oci shell`)")
}
