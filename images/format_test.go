package images

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testLayers() map[Component]Blob {
	return map[Component]Blob{
		Kernel:    {Descriptor: ocispec.Descriptor{Digest: digest.FromString("k"), Size: 1}},
		Initramfs: {Descriptor: ocispec.Descriptor{Digest: digest.FromString("i"), Size: 1}},
	}
}

func TestPackArchIsIronicCompatible(t *testing.T) {
	meta := Metadata{IPAVersion: "10.0.0", Revision: "abc", Source: "https://opendev.org/openstack/ironic-python-agent", Created: time.Unix(1700000000, 0)}
	p, err := packArch("amd64", testLayers(), meta)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range Components() {
		var m map[string]any
		if err := json.Unmarshal(p.manifests[i].Data, &m); err != nil {
			t.Fatal(err)
		}
		if m["artifactType"] != c.ArtifactType() || m["mediaType"] != ocispec.MediaTypeImageManifest {
			t.Errorf("%s manifest: artifactType %v mediaType %v", c, m["artifactType"], m["mediaType"])
		}
		cfg := m["config"].(map[string]any)
		if cfg["mediaType"] != "application/vnd.oci.empty.v1+json" || cfg["digest"] != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" || cfg["size"] != 2.0 {
			t.Errorf("%s config = %v, want the OCI empty descriptor", c, cfg)
		}
		layers := m["layers"].([]any)
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers", c, len(layers))
		}
		l := layers[0].(map[string]any)
		if l["mediaType"] != c.ArtifactType() || l["annotations"].(map[string]any)[ocispec.AnnotationTitle] != "ironic-python-agent."+string(c) {
			t.Errorf("%s layer = %v", c, l)
		}
		ann := m["annotations"].(map[string]any)
		if ann[ocispec.AnnotationVersion] != "10.0.0" || ann[ocispec.AnnotationCreated] != "2023-11-14T22:13:20Z" {
			t.Errorf("%s annotations = %v", c, ann)
		}
		e := p.entries[i]
		if e.Platform.OS != "linux" || e.Platform.Architecture != "amd64" || e.Annotations[AnnotationComponent] != string(c) || e.Digest != p.manifests[i].Descriptor.Digest {
			t.Errorf("%s index entry = %+v", c, e)
		}
	}
}

func TestBuildIndexMergesAndIsDeterministic(t *testing.T) {
	meta := Metadata{IPAVersion: "1"}
	amd, _ := packArch("amd64", testLayers(), meta)
	arm, _ := packArch("arm64", testLayers(), meta)
	a, err := buildIndex(nil, amd.entries, meta)
	if err != nil {
		t.Fatal(err)
	}
	var base ocispec.Index
	json.Unmarshal(a.Data, &base)
	merged, _ := buildIndex(&base, arm.entries, meta)
	// Pushing amd64 again over the merged index replaces, never duplicates.
	var m ocispec.Index
	json.Unmarshal(merged.Data, &m)
	again, _ := buildIndex(&m, amd.entries, meta)
	if again.Descriptor.Digest != merged.Descriptor.Digest {
		t.Fatalf("re-pushing amd64 changed the index: %s != %s", again.Descriptor.Digest, merged.Descriptor.Digest)
	}
	var got []string
	for _, e := range m.Manifests {
		got = append(got, e.Platform.Architecture+"/"+e.Annotations[AnnotationComponent])
	}
	if strings.Join(got, " ") != "amd64/kernel amd64/initramfs arm64/kernel arm64/initramfs" {
		t.Fatalf("merged index entries = %v", got)
	}
	// Arm64 first, then amd64, gives the same bytes.
	armOnly, _ := buildIndex(nil, arm.entries, meta)
	var ao ocispec.Index
	json.Unmarshal(armOnly.Data, &ao)
	other, _ := buildIndex(&ao, amd.entries, meta)
	if other.Descriptor.Digest != merged.Descriptor.Digest {
		t.Fatal("index digest depends on push order")
	}
}

func TestParseArtifactManifestRejects(t *testing.T) {
	layer := func(title string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ArtifactTypeKernel, Digest: digest.FromString("x"), Size: 1,
			Annotations: map[string]string{ocispec.AnnotationTitle: title}}
	}
	cases := map[string]struct {
		m    ocispec.Manifest
		want string
	}{
		"zero layers":      {ocispec.Manifest{ArtifactType: ArtifactTypeKernel}, "0 layers"},
		"two layers":       {ocispec.Manifest{ArtifactType: ArtifactTypeKernel, Layers: []ocispec.Descriptor{layer("a"), layer("b")}}, "2 layers"},
		"unknown type":     {ocispec.Manifest{ArtifactType: "application/vnd.unknown.artifact.v1", Layers: []ocispec.Descriptor{layer("a")}}, `unknown artifactType "application/vnd.unknown.artifact.v1"`},
		"title with slash": {ocispec.Manifest{ArtifactType: ArtifactTypeKernel, Layers: []ocispec.Descriptor{layer("../etc/passwd")}}, "not a plain file name"},
		"title dotdot":     {ocispec.Manifest{ArtifactType: ArtifactTypeKernel, Layers: []ocispec.Descriptor{layer("..")}}, "not a plain file name"},
		"bad digest": {ocispec.Manifest{ArtifactType: ArtifactTypeKernel, Layers: []ocispec.Descriptor{{Digest: "md5:abc", Size: 1}}},
			"want a sha256 digest"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(c.m)
			_, _, err := parseArtifactManifest(raw)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	ok, _ := json.Marshal(ocispec.Manifest{ArtifactType: ArtifactTypeInitramfs, Layers: []ocispec.Descriptor{layer("ironic-python-agent.initramfs")}})
	if _, c, err := parseArtifactManifest(ok); err != nil || c != Initramfs {
		t.Fatalf("valid manifest: %v, %v", c, err)
	}
}

func TestMagicChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	arm := make([]byte, 0x100)
	copy(arm[0x38:], "ARM\x64")
	for name, b := range map[string][]byte{"bzImage": bz, "Image": arm, "zboot": []byte("MZ\x00\x00zimg....")} {
		if err := CheckKernel(write(name, b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{"elf": []byte("\x7fELF\x02\x01\x01"), "empty": {}, "short": []byte("HdrS")} {
		err := CheckKernel(write(name, b))
		if err == nil || !strings.Contains(err.Error(), "not a Linux bzImage") {
			t.Errorf("%s accepted as kernel: %v", name, err)
		}
	}
	if err := CheckKernel(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as kernel: %v", err)
	}
	for name, b := range map[string][]byte{"newc": []byte("070701000"), "gz": {0x1f, 0x8b, 8}, "xz": []byte("\xfd7zXZ\x00\x00"), "zst": {0x28, 0xb5, 0x2f, 0xfd, 0}} {
		if err := CheckInitramfs(write(name, b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{"tar": []byte("ustar\x00"), "bz2": []byte("BZh91AY"), "text": []byte("hello")} {
		err := CheckInitramfs(write(name, b))
		if err == nil || !strings.Contains(err.Error(), "not a cpio archive") {
			t.Errorf("%s accepted as initramfs: %v", name, err)
		}
	}
}

func TestFileNames(t *testing.T) {
	for _, c := range []struct {
		c          Component
		arch, want string
	}{
		{Kernel, "amd64", "ironic-python-agent.kernel"},
		{Initramfs, "amd64", "ironic-python-agent.initramfs"},
		{Kernel, "arm64", "ironic-python-agent_aarch64.kernel"},
		{Initramfs, "arm64", "ironic-python-agent_aarch64.initramfs"},
	} {
		if got := FileName(c.c, c.arch); got != c.want {
			t.Errorf("FileName(%s, %s) = %s, want %s", c.c, c.arch, got, c.want)
		}
	}
}
