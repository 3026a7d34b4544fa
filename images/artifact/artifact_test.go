package artifact

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

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
