package content

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
)

// WriteVerified streams src into dst through a temporary file in dst's directory, checks size
// and digest at EOF, fsyncs and renames (internal/fsutil.WriteAtomic): nothing half-written is
// ever visible under dst.
func WriteVerified(ctx context.Context, dst string, src io.Reader, desc ocispec.Descriptor) error {
	var mismatch error
	err := fsutil.WriteAtomic(dst, func(w io.Writer) error {
		vw := NewVerifyingWriter(w, desc)
		if _, err := CopyCtx(ctx, vw, src); err != nil {
			return err
		}
		mismatch = vw.Verify()
		return mismatch
	})
	if err != nil && err != mismatch {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return err
}
