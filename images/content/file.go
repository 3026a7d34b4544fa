package content

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteVerified streams src into dst through a temporary file in dst's directory, checks size
// and digest at EOF, fsyncs and renames: nothing half-written is ever visible under dst.
func WriteVerified(ctx context.Context, dst string, src io.Reader, desc ocispec.Descriptor) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	vw := NewVerifyingWriter(tmp, desc)
	if _, err := CopyCtx(ctx, vw, src); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := vw.Verify(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return SyncDir(filepath.Dir(dst))
}

// WriteFileAtomic writes data to path through a synced temporary file and a rename.
func WriteFileAtomic(path string, data []byte) error {
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	return WriteVerified(context.Background(), path, bytes.NewReader(data), desc)
}

// SyncDir fsyncs a directory so that renames in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
