package bootdir

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// download fetches desc from src into dst through DIR/.ipa-oci/partial/<hex>.part: a partial
// file left by an interrupted pull is hashed and continued from its end (src resumes, with an
// HTTP Range request for a registry); a digest or size mismatch discards it. Retrying a
// broken transfer is src's business: a registry target does it under its retry policy.
func (d *destDir) download(ctx context.Context, o *options, src content.BlobFetcher, desc ocispec.Descriptor, dst string) (fileID, error) {
	part := d.state("partial", desc.Digest.Encoded()+".part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fileID{}, err
	}
	defer f.Close()
	wb := &writeback{f: f}
	st, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	if st.Size() > desc.Size { // not a prefix of this blob
		if err := f.Truncate(0); err != nil {
			return fileID{}, err
		}
	}
	ah := content.NewAsyncHasher()
	defer ah.Stop()
	have, err := io.Copy(ah, f) // hash what an earlier pull left; the file offset ends at its end
	if err != nil {
		return fileID{}, err
	}
	vw := content.NewVerifyingWriter(wb, desc)
	vw.Resume(ah, have)
	wb.written, wb.flush = have, have
	if have > 0 {
		o.log.WithFields(map[string]any{"digest": desc.Digest, "size": desc.Size, "offset": have}).Info("resuming interrupted download")
	}
	bar := progress.New(o.progress, desc.Size, "pull", desc.Digest)
	bar.Set(have)
	defer bar.Finish()
	err = fetchInto(ctx, src, desc, have, io.MultiWriter(vw, bar))
	if err == nil {
		err = vw.Verify()
	}
	if errors.Is(err, content.ErrDigestMismatch) {
		f.Close()
		os.Remove(part)
		return fileID{}, err
	}
	if err != nil {
		f.Sync() // keep what arrived for the next run to resume
		return fileID{}, err
	}
	// Served files are world-readable whatever the umask (the partial file was created under it).
	if err := f.Chmod(publicFileMode); err != nil {
		return fileID{}, err
	}
	if err := f.Sync(); err != nil {
		return fileID{}, err
	}
	st, err = f.Stat()
	if err != nil {
		return fileID{}, err
	}
	if err := f.Close(); err != nil {
		return fileID{}, err
	}
	if err := os.Rename(part, dst); err != nil {
		return fileID{}, err
	}
	return idOf(st), nil
}

// fetchInto copies desc's bytes from offset into w; nothing to fetch when offset is the end.
func fetchInto(ctx context.Context, src content.BlobFetcher, desc ocispec.Descriptor, offset int64, w io.Writer) error {
	if offset == desc.Size {
		return nil
	}
	rc, err := src.FetchBlob(ctx, desc, offset)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = content.CopyCtx(ctx, w, rc)
	return err
}
