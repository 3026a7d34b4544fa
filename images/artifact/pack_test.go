package artifact

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testLayers() map[Component]content.Blob {
	return map[Component]content.Blob{
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
