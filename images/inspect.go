package images

import (
	"context"
	"fmt"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Inspection is what `ipa-oci inspect` shows about a reference.
type Inspection struct {
	Ref         string               `json:"ref"`
	Index       ocispec.Descriptor   `json:"index"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	Platforms   []PlatformFiles      `json:"platforms"`
	Referrers   []ocispec.Descriptor `json:"referrers"`
}

// PlatformFiles is one architecture's files and the Ironic settings that use them.
type PlatformFiles struct {
	Arch   string            `json:"arch"`
	Files  []File            `json:"files"`
	Ironic map[string]string `json:"ironic,omitempty"` // deploy_kernel, deploy_ramdisk
}

// Inspect describes the index at ref: its platforms, each file's manifest and layer, the
// referrers of the index, and the oci:// URLs to paste into Ironic.
func Inspect(ctx context.Context, ref string, opts ...Option) (*Inspection, error) {
	r, err := ParseReference(ref, opts...)
	if err != nil {
		return nil, err
	}
	desc, err := r.Target.Resolve(ctx, r.Identifier())
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	idx, idxDesc, err := fetchIndex(ctx, r.Target, desc.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	in := &Inspection{Ref: ref, Index: idxDesc, Annotations: idx.Annotations}
	archs := map[string]bool{}
	for _, e := range idx.Manifests {
		if e.Platform != nil {
			archs[e.Platform.Architecture] = true
		}
	}
	if len(archs) == 0 {
		archs[DefaultArch] = true // entries without platform (e.g. assembled with oras)
	}
	var names []string
	for a := range archs {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, arch := range names {
		a, err := resolveArtifact(ctx, r, idxDesc, arch)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", ref, err)
		}
		pf := PlatformFiles{Arch: arch, Files: a.Files}
		for _, f := range a.Files {
			if u := a.IronicURL(f); u != "" {
				if pf.Ironic == nil {
					pf.Ironic = map[string]string{}
				}
				pf.Ironic[f.Component.IronicSetting()] = u
			}
		}
		in.Platforms = append(in.Platforms, pf)
	}
	in.Referrers, err = r.Target.Referrers(ctx, idxDesc.Digest)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	if in.Referrers == nil {
		in.Referrers = []ocispec.Descriptor{}
	}
	return in, nil
}

// Mismatch is one file that does not match what it should be.
type Mismatch struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

func (m Mismatch) String() string { return m.File + ": " + m.Reason }

// Verify recomputes the digest of every file recorded in dir/ipa-oci.json and, when against is
// set, compares the records with what that reference holds in the registry now. It returns the
// mismatches; an error means verification itself could not run.
func Verify(ctx context.Context, dir, against string, opts ...Option) ([]Mismatch, error) {
	sum, err := readSummary(dir)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if len(sum.Artifacts) == 0 {
		return nil, fmt.Errorf("verify %s: ipa-oci.json lists no files", dir)
	}
	var out []Mismatch
	for _, rec := range sum.Artifacts {
		for _, f := range rec.Files {
			got, size, err := fileDigest(joinDir(dir, f.Name))
			switch {
			case err != nil:
				out = append(out, Mismatch{f.Name, fmt.Sprintf("cannot read: %v", err)})
			case size != f.Size:
				out = append(out, Mismatch{f.Name, fmt.Sprintf("size %d, recorded %d", size, f.Size)})
			case got != f.Digest:
				out = append(out, Mismatch{f.Name, fmt.Sprintf("digest %s, recorded %s", got, f.Digest)})
			}
		}
	}
	out = append(out, checkSums(dir, sum)...)
	if against == "" {
		return out, nil
	}
	r, err := ParseReference(against, opts...)
	if err != nil {
		return nil, err
	}
	desc, err := r.Target.Resolve(ctx, r.Identifier())
	if err != nil {
		return nil, fmt.Errorf("verify against %s: %w", against, err)
	}
	for _, rec := range sum.Artifacts {
		a, err := resolveArtifact(ctx, r, desc, rec.Arch)
		if err != nil {
			return nil, fmt.Errorf("verify against %s: %w", against, err)
		}
		want := map[string]File{}
		for _, f := range a.Files {
			want[f.Name] = f
		}
		for _, f := range rec.Files {
			w, ok := want[f.Name]
			switch {
			case !ok:
				out = append(out, Mismatch{f.Name, "not in " + against})
			case w.Layer.Digest != f.Digest:
				out = append(out, Mismatch{f.Name, fmt.Sprintf("registry has %s, file recorded as %s", w.Layer.Digest, f.Digest)})
			case w.Manifest.Digest != f.ManifestDigest && f.ManifestDigest != "":
				out = append(out, Mismatch{f.Name, fmt.Sprintf("registry manifest %s, recorded %s", w.Manifest.Digest, f.ManifestDigest)})
			}
		}
	}
	return out, nil
}

// checkSums compares DIR/SHA256SUMS with the records.
func checkSums(dir string, sum *Summary) []Mismatch {
	sums, err := readSHA256SUMS(joinDir(dir, "SHA256SUMS"))
	if err != nil {
		return []Mismatch{{"SHA256SUMS", err.Error()}}
	}
	var out []Mismatch
	for _, rec := range sum.Artifacts {
		for _, f := range rec.Files {
			if d, ok := sums[f.Name]; !ok {
				out = append(out, Mismatch{"SHA256SUMS", f.Name + " missing"})
			} else if d != f.Digest {
				out = append(out, Mismatch{"SHA256SUMS", fmt.Sprintf("%s listed as %s, recorded %s", f.Name, d, f.Digest)})
			}
		}
	}
	return out
}
