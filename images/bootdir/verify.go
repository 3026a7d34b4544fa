package bootdir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
)

// Mismatch is one file that does not match what it should be.
type Mismatch struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

func (m Mismatch) String() string { return m.File + ": " + m.Reason }

// Verify recomputes the digest of every file recorded in dir/ipa-oci.json and checks
// SHA256SUMS; when against is not nil, it also compares the records with what ref holds in
// against now. It returns the mismatches; an error means verification itself could not run.
func Verify(ctx context.Context, dir string, against Source, ref content.Reference) ([]Mismatch, error) {
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
			got, size, err := content.FileDigest(ctx, filepath.Join(dir, f.Name))
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
	if against == nil {
		return out, nil
	}
	desc, err := against.Resolve(ctx, ref.Identifier())
	if err != nil {
		return nil, fmt.Errorf("verify against %s: %w", ref, err)
	}
	for _, rec := range sum.Artifacts {
		a, err := artifact.Resolve(ctx, against, ref, desc, rec.Arch)
		if err != nil {
			return nil, fmt.Errorf("verify against %s: %w", ref, err)
		}
		want := map[string]artifact.File{}
		for _, f := range a.Files {
			want[f.Name] = f
		}
		for _, f := range rec.Files {
			w, ok := want[f.Name]
			switch {
			case !ok:
				out = append(out, Mismatch{f.Name, "not in " + ref.String()})
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
	sums, err := readSHA256SUMS(filepath.Join(dir, "SHA256SUMS"))
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

// readSHA256SUMS parses a sha256sum-format file into name -> digest.
func readSHA256SUMS(path string) (map[string]digest.Digest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		hex, name, ok := strings.Cut(line, "  ")
		if !ok {
			return nil, fmt.Errorf("bad line %q", line)
		}
		out[name] = digest.NewDigestFromEncoded(digest.SHA256, hex)
	}
	return out, nil
}
