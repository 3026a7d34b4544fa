package store_test

// Interoperability tests against a real CNCF Distribution registry: what ipa-oci pushes, oras
// and crane read byte-exact (and Ironic's requirements on the manifests hold); what oras
// assembles with the same media types, ipa-oci pulls; an OCI layout written by ipa-oci and
// copied by oras pulls back from the registry unchanged.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// emptyConfigDigest is the digest of "{}", the OCI empty descriptor Ironic expects as config.
const emptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// interopFiles are a fake kernel and initramfs that pass ipa-oci's magic checks.
type interopFiles struct {
	dir                        string
	kernel, initramfs          string // paths
	kernelData, initramfsData  []byte
	buildInfo                  []byte
	kernelDigest, initrdDigest digest.Digest
}

// makeInteropFiles writes a fake bzImage (random bytes, "HdrS" at 0x202) and a gzip-compressed
// newc-cpio-looking initramfs (random bytes behind a "070701" header) of the given sizes.
func makeInteropFiles(t *testing.T, kernelSize, initramfsSize int) interopFiles {
	t.Helper()
	dir := t.TempDir()
	kernel := interopRandom(t, kernelSize)
	copy(kernel[0x202:], "HdrS")

	raw := interopRandom(t, initramfsSize)
	copy(raw, "070701")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f := interopFiles{
		dir:           dir,
		kernel:        filepath.Join(dir, "bzImage"),
		initramfs:     filepath.Join(dir, "rootfs.cpio.gz"),
		kernelData:    kernel,
		initramfsData: gz.Bytes(),
		buildInfo:     []byte(`{"ipa_version":"2025.1","buildroot":"2025.02","note":"interop test"}`),
	}
	f.kernelDigest = digest.FromBytes(f.kernelData)
	f.initrdDigest = digest.FromBytes(f.initramfsData)
	interopWriteFile(t, f.kernel, f.kernelData)
	interopWriteFile(t, f.initramfs, f.initramfsData)
	return f
}

func (f interopFiles) data(c artifact.Component) []byte {
	if c == artifact.Kernel {
		return f.kernelData
	}
	return f.initramfsData
}

func interopRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func interopWriteFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// interopRun runs a tool, fails the test with its stderr if it exits non-zero, and returns stdout.
func interopRun(t *testing.T, dir, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// Keep the tools away from the user's docker config and oras' cache.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

func interopContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// interopDirNames lists the names in dir, sorted.
func interopDirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func interopAssertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, digest %s; want %d bytes, digest %s", path, len(got), digest.FromBytes(got), len(want), digest.FromBytes(want))
	}
}

// interopCraneManifest fetches ref's manifest with crane and checks that its bytes have digest want.
func interopCraneManifest(t *testing.T, crane, ref string, want ocispec.Descriptor) []byte {
	t.Helper()
	raw := interopRun(t, "", crane, "manifest", "--insecure", ref)
	if got := digest.FromBytes(raw); got != want.Digest {
		t.Fatalf("crane manifest %s: bytes have digest %s, ipa-oci pushed %s:\n%s", ref, got, want.Digest, raw)
	}
	if int64(len(raw)) != want.Size {
		t.Fatalf("crane manifest %s: %d bytes, descriptor says %d", ref, len(raw), want.Size)
	}
	return raw
}

// interopIronicManifest fetches a manifest by digest as Ironic does (plain GET, OCI Accept
// header only) and checks status, content type, Docker-Content-Digest and the bytes' digest.
func interopIronicManifest(t *testing.T, host, repo string, want ocispec.Descriptor) {
	t.Helper()
	url := "http://" + host + "/v2/" + repo + "/manifests/" + want.Digest.String()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest ||
		resp.Header.Get("Docker-Content-Digest") != want.Digest.String() || digest.FromBytes(body) != want.Digest {
		t.Fatalf("GET %s (Accept: OCI manifest): %s, Content-Type %q, Docker-Content-Digest %q, body digest %s; want 200, %s, %s",
			url, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), digest.FromBytes(body),
			ocispec.MediaTypeImageManifest, want.Digest)
	}
}

// TestInteropOrasAndCraneReadIpaOciPush pushes with artifact.Push and reads everything back with
// crane and oras: the index and manifests byte-exact, the fields Ironic needs, the layers
// byte-exact under their titles, and the build-info referrer through the fallback tag.
func TestInteropOrasAndCraneReadIpaOciPush(t *testing.T) {
	ctx := interopContext(t)
	reg := testenv.StartRegistry(t)
	oras, crane := testenv.Tool(t, "oras"), testenv.Tool(t, "crane")
	files := makeInteropFiles(t, 300<<10, 2<<20)
	repo := reg.Host + "/ipa/interop"

	idxDesc, err := imagestest.Push(ctx, repo+":2025.1", artifact.PushRequest{
		Kernel: files.kernel, Initramfs: files.initramfs, IPAVersion: "2025.1",
		Revision: "0123abcd", Source: "https://opendev.org/openstack/ironic-python-agent",
		Created: time.Unix(1700000000, 0), BuildInfo: files.buildInfo,
	}, store.WithPlainHTTP(true))
	if err != nil {
		t.Fatalf("push: %v", err)
	}

	// The index, by tag, by digest and by the per-arch tag (an index of this push's architecture
	// only: here the same bytes as the merged one): exactly the bytes ipa-oci pushed.
	for _, ref := range []string{repo + ":2025.1", repo + ":2025.1-amd64"} {
		interopCraneManifest(t, crane, ref, idxDesc)
	}
	rawIdx := interopCraneManifest(t, crane, repo+"@"+idxDesc.Digest.String(), idxDesc)
	var idx ocispec.Index
	if err := json.Unmarshal(rawIdx, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.MediaType != ocispec.MediaTypeImageIndex || idx.SchemaVersion != 2 {
		t.Fatalf("index mediaType %q schemaVersion %d", idx.MediaType, idx.SchemaVersion)
	}
	if idx.Annotations[ocispec.AnnotationVersion] != "2025.1" || idx.Annotations[ocispec.AnnotationCreated] != "2023-11-14T22:13:20Z" {
		t.Fatalf("index annotations %v", idx.Annotations)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("index lists %d manifests, want 2 (kernel, initramfs):\n%s", len(idx.Manifests), rawIdx)
	}

	seen := map[artifact.Component]bool{}
	for _, e := range idx.Manifests {
		c := artifact.Component(e.Annotations[artifact.AnnotationComponent])
		if c != artifact.Kernel && c != artifact.Initramfs || seen[c] {
			t.Fatalf("index entry %s: component annotation %q", e.Digest, c)
		}
		seen[c] = true
		if e.Platform == nil || e.Platform.OS != "linux" || e.Platform.Architecture != "amd64" {
			t.Fatalf("%s entry: platform %+v, want linux/amd64", c, e.Platform)
		}
		if e.MediaType != ocispec.MediaTypeImageManifest || e.ArtifactType != c.ArtifactType() {
			t.Fatalf("%s entry: mediaType %q artifactType %q", c, e.MediaType, e.ArtifactType)
		}
		mref := repo + "@" + e.Digest.String()

		raw := interopCraneManifest(t, crane, mref, e)
		// Ironic's view: a GET asking for OCI media types only.
		interopIronicManifest(t, reg.Host, "ipa/interop", e)
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != c.ArtifactType() {
			t.Fatalf("%s manifest: mediaType %q artifactType %q, want %q", c, m.MediaType, m.ArtifactType, c.ArtifactType())
		}
		if m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Digest != emptyConfigDigest || m.Config.Size != 2 {
			t.Fatalf("%s manifest: config %+v, want the OCI empty descriptor", c, m.Config)
		}
		if len(m.Layers) != 1 {
			t.Fatalf("%s manifest: %d layers, Ironic needs exactly one", c, len(m.Layers))
		}
		l := m.Layers[0]
		want := files.data(c)
		if l.Digest != digest.FromBytes(want) || l.Size != int64(len(want)) || l.MediaType != c.ArtifactType() {
			t.Fatalf("%s layer %+v, want %s, %d bytes, %s", c, l, digest.FromBytes(want), len(want), c.ArtifactType())
		}
		if l.Annotations[ocispec.AnnotationTitle] != c.Title() || len(l.Annotations) != 1 {
			t.Fatalf("%s layer annotations %v, want only the title %q", c, l.Annotations, c.Title())
		}
		if m.Annotations[ocispec.AnnotationVersion] != "2025.1" || m.Annotations[ocispec.AnnotationRevision] != "0123abcd" {
			t.Fatalf("%s manifest annotations %v", c, m.Annotations)
		}
		// The empty config blob is really there (Ironic does not fetch it, other clients do).
		if cfg := interopRun(t, "", crane, "blob", "--insecure", repo+"@"+emptyConfigDigest); string(cfg) != "{}" {
			t.Fatalf("config blob %q, want {}", cfg)
		}

		// crane blob: the layer byte-exact.
		if got := interopRun(t, "", crane, "blob", "--insecure", repo+"@"+l.Digest.String()); !bytes.Equal(got, want) {
			t.Fatalf("crane blob %s: %d bytes, digest %s; want %d bytes", l.Digest, len(got), digest.FromBytes(got), len(want))
		}

		// oras pull by manifest digest writes the file under its title, byte-exact, and nothing else.
		out := t.TempDir()
		interopRun(t, "", oras, "pull", "--plain-http", mref, "-o", out)
		if names := interopDirNames(t, out); len(names) != 1 || names[0] != c.Title() {
			t.Fatalf("oras pull %s wrote %v, want only %s", mref, names, c.Title())
		}
		interopAssertFile(t, filepath.Join(out, c.Title()), want)
	}

	// The build-info referrer: oras finds it through the sha256-<hex> fallback tag (Distribution
	// has no referrers API), and its layer is the JSON that was pushed.
	var disc struct {
		Referrers []struct {
			ArtifactType string            `json:"artifactType"`
			Digest       digest.Digest     `json:"digest"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"referrers"`
	}
	rawDisc := interopRun(t, "", oras, "discover", "--plain-http", "--format", "json", "--distribution-spec", "v1.1-referrers-tag", repo+"@"+idxDesc.Digest.String())
	if err := json.Unmarshal(rawDisc, &disc); err != nil {
		t.Fatalf("oras discover output: %v\n%s", err, rawDisc)
	}
	if len(disc.Referrers) != 1 || disc.Referrers[0].ArtifactType != artifact.ArtifactTypeBuildInfo {
		t.Fatalf("oras discover: want one %s referrer, got:\n%s", artifact.ArtifactTypeBuildInfo, rawDisc)
	}
	fallback := repo + ":sha256-" + idxDesc.Digest.Encoded()
	rawFallback := interopRun(t, "", oras, "manifest", "fetch", "--plain-http", fallback)
	var fb ocispec.Index
	if err := json.Unmarshal(rawFallback, &fb); err != nil || len(fb.Manifests) != 1 || fb.Manifests[0].Digest != disc.Referrers[0].Digest {
		t.Fatalf("fallback tag %s does not list the referrer oras discovered (%v):\n%s", fallback, err, rawFallback)
	}
	out := t.TempDir()
	interopRun(t, "", oras, "pull", "--plain-http", repo+"@"+disc.Referrers[0].Digest.String(), "-o", out)
	interopAssertFile(t, filepath.Join(out, "build-info.json"), files.buildInfo)
}

// TestInteropIpaOciPullsOrasArtifact assembles the format with oras only (two pushes with the
// ipa-oci media types and an index without platforms) and pulls it with artifact.Pull.
func TestInteropIpaOciPullsOrasArtifact(t *testing.T) {
	ctx := interopContext(t)
	reg := testenv.StartRegistry(t)
	oras := testenv.Tool(t, "oras")
	files := makeInteropFiles(t, 200<<10, 1<<20)
	repo := reg.Host + "/ipa/from-oras"

	// oras titles layers with the path as given: push from the files' directory by name.
	for _, p := range []struct{ tag, file, at string }{
		{"kernel", filepath.Base(files.kernel), artifact.ArtifactTypeKernel},
		{"initramfs", filepath.Base(files.initramfs), artifact.ArtifactTypeInitramfs},
	} {
		interopRun(t, files.dir, oras, "push", "--plain-http", "--artifact-type", p.at, repo+":"+p.tag, p.file+":"+p.at)
	}
	interopRun(t, "", oras, "manifest", "index", "create", "--plain-http", repo+":2025.1", "kernel", "initramfs")

	// The index oras made has no platforms: ipa-oci takes platform-less entries for the arch.
	var idx ocispec.Index
	if err := json.Unmarshal(interopRun(t, "", oras, "manifest", "fetch", "--plain-http", repo+":2025.1"), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("oras index lists %d manifests", len(idx.Manifests))
	}

	dest := filepath.Join(t.TempDir(), "tftpboot")
	res, err := imagestest.Pull(ctx, repo+":2025.1", bootdir.PullOptions{Dest: dest}, store.WithPlainHTTP(true))
	if err != nil {
		t.Fatalf("pull of the oras-made artifact: %v", err)
	}
	if !res.Updated || len(res.Record.Files) != 2 {
		t.Fatalf("pull result %+v", res)
	}
	interopAssertFile(t, filepath.Join(dest, "ironic-python-agent.kernel"), files.kernelData)
	interopAssertFile(t, filepath.Join(dest, "ironic-python-agent.initramfs"), files.initramfsData)
	for _, f := range res.Record.Files {
		want := files.initrdDigest
		if f.Component == string(artifact.Kernel) {
			want = files.kernelDigest
		}
		if f.Digest != want {
			t.Fatalf("record: %s digest %s, want %s", f.Name, f.Digest, want)
		}
	}
	sums := interopRun(t, dest, "sha256sum", "--strict", "-c", "SHA256SUMS")
	for _, name := range []string{"ironic-python-agent.kernel: OK", "ironic-python-agent.initramfs: OK"} {
		if !bytes.Contains(sums, []byte(name)) {
			t.Fatalf("sha256sum -c SHA256SUMS does not check %q:\n%s", name, sums)
		}
	}

	// A second pull finds DIR up to date.
	res, err = imagestest.Pull(ctx, repo+":2025.1", bootdir.PullOptions{Dest: dest}, store.WithPlainHTTP(true))
	if err != nil || res.Updated {
		t.Fatalf("second pull: updated=%v err=%v, want up to date", res != nil && res.Updated, err)
	}
}

// TestInteropLayoutCopiedByOras pushes to an OCI image layout, copies it (with referrers) to a
// registry with oras copy, and pulls from the registry: same index digest, same bytes.
func TestInteropLayoutCopiedByOras(t *testing.T) {
	ctx := interopContext(t)
	reg := testenv.StartRegistry(t)
	oras, crane := testenv.Tool(t, "oras"), testenv.Tool(t, "crane")
	files := makeInteropFiles(t, 200<<10, 1<<20)
	layout := filepath.Join(t.TempDir(), "layout")
	repo := reg.Host + "/ipa/from-layout"

	idxDesc, err := imagestest.Push(ctx, "oci:"+layout+":2025.1", artifact.PushRequest{
		Kernel: files.kernel, Initramfs: files.initramfs, IPAVersion: "2025.1", BuildInfo: files.buildInfo,
	})
	if err != nil {
		t.Fatalf("push to layout: %v", err)
	}
	interopRun(t, "", oras, "copy", "-r", "--from-oci-layout", layout+":2025.1", "--to-plain-http", repo+":2025.1")

	interopCraneManifest(t, crane, repo+":2025.1", idxDesc)
	dest := t.TempDir()
	res, err := imagestest.Pull(ctx, repo+":2025.1", bootdir.PullOptions{Dest: dest}, store.WithPlainHTTP(true))
	if err != nil {
		t.Fatalf("pull after oras copy: %v", err)
	}
	if res.Record.IndexDigest != idxDesc.Digest {
		t.Fatalf("pulled index %s, pushed %s", res.Record.IndexDigest, idxDesc.Digest)
	}
	interopAssertFile(t, filepath.Join(dest, "ironic-python-agent.kernel"), files.kernelData)
	interopAssertFile(t, filepath.Join(dest, "ironic-python-agent.initramfs"), files.initramfsData)
	interopRun(t, dest, "sha256sum", "--strict", "-c", "SHA256SUMS")

	// oras copy -r carried the build-info referrer into the registry's fallback tag, where
	// ipa-oci finds it again.
	info, err := imagestest.FetchBuildInfo(ctx, repo+":2025.1", "amd64", store.WithPlainHTTP(true))
	if err != nil {
		t.Fatalf("build info after oras copy -r: %v", err)
	}
	if !bytes.Equal(info, files.buildInfo) {
		t.Fatalf("build info %q, want %q", info, files.buildInfo)
	}
}

// TestInteropMultiArchMerge pushes amd64 then arm64 to one tag: crane sees the merged index
// ipa-oci returned, oras pulls the arm64 kernel by its manifest digest byte-exact, and oras
// discover finds one build-info referrer per architecture on the merged index.
func TestInteropMultiArchMerge(t *testing.T) {
	ctx := interopContext(t)
	reg := testenv.StartRegistry(t)
	oras, crane := testenv.Tool(t, "oras"), testenv.Tool(t, "crane")
	amd := makeInteropFiles(t, 100<<10, 1<<20)
	arm := makeInteropFiles(t, 100<<10, 1<<20)
	copy(arm.kernelData[0x202:], "\x00\x00\x00\x00")
	copy(arm.kernelData[0x38:], "ARM\x64") // arm64 Image magic
	interopWriteFile(t, arm.kernel, arm.kernelData)
	repo := reg.Host + "/ipa/multi"

	if _, err := imagestest.Push(ctx, repo+":2025.1", artifact.PushRequest{Kernel: amd.kernel, Initramfs: amd.initramfs,
		IPAVersion: "2025.1", BuildInfo: []byte(`{"arch":"amd64"}`)}, store.WithPlainHTTP(true)); err != nil {
		t.Fatalf("push amd64: %v", err)
	}
	merged, err := imagestest.Push(ctx, repo+":2025.1", artifact.PushRequest{Arch: "arm64", Kernel: arm.kernel, Initramfs: arm.initramfs,
		IPAVersion: "2025.1", BuildInfo: []byte(`{"arch":"arm64"}`)}, store.WithPlainHTTP(true))
	if err != nil {
		t.Fatalf("push arm64: %v", err)
	}

	var idx ocispec.Index
	if err := json.Unmarshal(interopCraneManifest(t, crane, repo+":2025.1", merged), &idx); err != nil {
		t.Fatal(err)
	}
	var armKernel *ocispec.Descriptor
	arches := map[string]int{}
	for i, e := range idx.Manifests {
		if e.Platform == nil {
			t.Fatalf("merged index entry %s has no platform", e.Digest)
		}
		arches[e.Platform.Architecture]++
		if e.Platform.Architecture == "arm64" && e.ArtifactType == artifact.ArtifactTypeKernel {
			armKernel = &idx.Manifests[i]
		}
	}
	if arches["amd64"] != 2 || arches["arm64"] != 2 || armKernel == nil {
		t.Fatalf("merged index: entries per arch %v, want 2 amd64 and 2 arm64 including an arm64 kernel", arches)
	}
	out := t.TempDir()
	interopRun(t, "", oras, "pull", "--plain-http", repo+"@"+armKernel.Digest.String(), "-o", out)
	interopAssertFile(t, filepath.Join(out, artifact.Kernel.Title()), arm.kernelData)

	var disc struct {
		Referrers []struct {
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"referrers"`
	}
	raw := interopRun(t, "", oras, "discover", "--plain-http", "--format", "json", "--distribution-spec", "v1.1-referrers-tag", repo+"@"+merged.Digest.String())
	if err := json.Unmarshal(raw, &disc); err != nil {
		t.Fatalf("oras discover output: %v\n%s", err, raw)
	}
	got := map[string]bool{}
	for _, r := range disc.Referrers {
		if r.ArtifactType == artifact.ArtifactTypeBuildInfo {
			got[r.Annotations[artifact.AnnotationArch]] = true
		}
	}
	if len(disc.Referrers) != 2 || !got["amd64"] || !got["arm64"] {
		t.Fatalf("oras discover on the merged index: want build info for amd64 and arm64, got:\n%s", raw)
	}
}
