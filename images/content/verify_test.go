package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestVerifyingWriter(t *testing.T) {
	data := []byte("ironic-python-agent")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	for name, c := range map[string]struct {
		write []byte
		want  string // "" for no error
	}{
		"exact":     {data, ""},
		"larger":    {append(append([]byte{}, data...), 'x'), "is larger than its descriptor's 19 bytes: digest mismatch"},
		"smaller":   {data[:5], "got 5 bytes, descriptor says 19: digest mismatch"},
		"other":     {bytes.ToUpper(data), "content has digest " + digest.FromBytes(bytes.ToUpper(data)).String()},
		"resumed":   {data[7:], ""},
		"truncated": {nil, "got 0 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			vw := NewVerifyingWriter(&out, desc)
			if name == "resumed" { // the first 7 bytes came with an earlier pull, hashed on the side
				h := NewAsyncHasher()
				h.Write(data[:7])
				vw.Resume(h, 7)
			}
			_, err := vw.Write(c.write)
			if err == nil {
				err = vw.Verify()
			}
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrDigestMismatch)) {
				t.Fatalf("err = %v, want %q (ErrDigestMismatch)", err, c.want)
			}
		})
	}
}

func TestAsyncHasherMatchesSHA256(t *testing.T) {
	data := make([]byte, 3*copyBufferSize+12345)
	rand.Read(data)
	h := NewAsyncHasher()
	for b := data; len(b) > 0; {
		n := min(len(b), 700_000) // chunks that do not line up with the hasher's buffers
		h.Write(b[:n])
		b = b[n:]
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != digest.FromBytes(data) {
		t.Fatalf("async hash %s, want %s", got, digest.FromBytes(data))
	}
}

// TestWriteVerifiedLeavesNothingOnMismatch: content that does not match its descriptor never
// appears under the final name, and no temporary file is left beside it.
func TestWriteVerifiedLeavesNothingOnMismatch(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "blob")
	desc := ocispec.Descriptor{Digest: digest.FromString("expected"), Size: 8}
	err := WriteVerified(context.Background(), dst, strings.NewReader("tampered"), desc)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists after a mismatch (%v)", dst, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left in %s: %v", dir, left)
	}
	if err := fsutil.WriteFileAtomic(dst, []byte("expected")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "expected" {
		t.Fatalf("%s holds %q", dst, b)
	}
}
