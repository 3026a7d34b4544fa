package bootdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
)

// PullOptions says where and how to place an artifact on a boot server.
type PullOptions struct {
	Dest       string        // directory served over TFTP/HTTP
	Arch       string        // amd64 (default) or arm64
	Pin        digest.Digest // refuse any other index digest
	IPXE       bool          // also write boot.ipxe (boot_aarch64.ipxe for arm64)
	KernelArgs []string      // kernel command line arguments for boot.ipxe
	Exec       string        // shell command run after a real update
	// VerifyLocal hashes every file of an up-to-date DIR and checks its record against the
	// source, instead of trusting files that stat(2) says nobody touched since they were checked.
	VerifyLocal bool
}

// PullResult says what a pull did.
type PullResult struct {
	Updated bool    // false: DIR already held this index, intact; no served file was written
	Record  *Record // the arch's current record after the pull
	// Repaired lists the files of an up-to-date DIR that no longer matched their digests (with
	// why) and were downloaded again.
	Repaired []string
}

// Source is what Pull reads from: a registry repository or an OCI layout (package store), or
// anything else that resolves tags and serves manifests and blobs.
type Source interface {
	content.Resolver
	content.Fetcher
	fmt.Stringer
}

// The errors Pull's callers may want to recognise (errors.Is), e.g. to name the flag involved.
var (
	// ErrPinMismatch: the reference resolves to another index than PullOptions.Pin.
	ErrPinMismatch = errors.New("index digest differs from the pin")
	// ErrKernelArg: a kernel argument holds a control character (it would add lines to boot.ipxe).
	ErrKernelArg = errors.New("kernel argument with a control character")
)

// Pull places ref's kernel and initramfs for po.Arch, read from src, in po.Dest: every blob
// is streamed to a partial file while hashed, verified at EOF, fsynced and renamed into a new
// version directory; then the version is switched in with one rename, the previous one kept
// for Rollback. A file already in DIR is reused (hard-linked) only after its content is hashed.
//
// When DIR already holds the index ref points at, Pull costs one Resolve, a few stat(2) calls
// and writes nothing: a served file whose inode, size, mtime or ctime changed since its digest
// was checked is hashed again, and downloaded again when it does not match.
func Pull(ctx context.Context, src Source, ref content.Reference, po PullOptions, opts ...Option) (*PullResult, error) {
	o := makeOptions(opts...)
	if po.Arch == "" {
		po.Arch = artifact.DefaultArch
	}
	if err := arches.Validate(po.Arch); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	for _, arg := range po.KernelArgs {
		if hasControl(arg) {
			return nil, errkind.Mark(ErrKernelArg, "pull %s: kernel argument %q contains a line break or another control character, which would add lines to boot.ipxe; give each argument on its own", ref, arg)
		}
	}
	d, err := openDestDir(po.Dest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log := o.log.WithFields(map[string]any{"ref": ref.String(), "arch": po.Arch, "dest": po.Dest})
	unlock, err := d.lock(ctx, func(msg string) { log.Info(msg) })
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer unlock()

	idxDesc := ocispec.Descriptor{Digest: ref.Digest}
	if ref.Digest == "" {
		if idxDesc, err = src.Resolve(ctx, ref.Tag); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	if po.Pin != "" && idxDesc.Digest != po.Pin {
		return nil, errkind.Mark(ErrPinMismatch, "pull %s: it resolves to %s but the pin is %s; refusing", ref, idxDesc.Digest, po.Pin)
	}
	curDir, cur, err := d.linked(po.Arch, "current")
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	same := cur != nil && cur.IndexDigest == idxDesc.Digest
	var damaged []damage
	if same {
		if err := d.ensurePublic(po.Arch, curDir); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		if damaged, err = d.checkFiles(ctx, curDir, cur, po.VerifyLocal); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		if len(damaged) == 0 && !po.VerifyLocal {
			return d.upToDate(ref, po, curDir, cur, log.WithField("index", idxDesc.Digest))
		}
	}

	a, err := artifact.Resolve(ctx, src, ref, idxDesc, po.Arch)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if hasControl(a.IPAVersion) {
		return nil, fmt.Errorf("pull %s: index %s: annotation %s %q contains a line break or another control character; refusing it (it would be written into boot.ipxe)",
			ref, a.Index.Digest, ocispec.AnnotationVersion, a.IPAVersion)
	}
	if same && len(damaged) == 0 {
		// VerifyLocal: every file hashed and matching; the record must list what the source does.
		if recordMatches(cur, a) {
			return d.upToDate(ref, po, curDir, cur, log.WithField("index", idxDesc.Digest))
		}
		damaged = append(damaged, damage{"record.json", "lists other files than the registry's index"})
	}
	var repaired []string
	for _, x := range damaged {
		repaired = append(repaired, x.String())
	}
	if len(repaired) > 0 {
		log.WithFields(map[string]any{"index": idxDesc.Digest, "damaged": repaired}).Warn("files in DIR do not match their digests; downloading them again")
	}
	rec, err := d.install(ctx, o, src, a, po)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log.WithFields(map[string]any{"index": rec.IndexDigest, "version": rec.IPAVersion}).Info("updated")
	res := &PullResult{Updated: true, Record: rec, Repaired: repaired}
	if po.Exec != "" {
		if err := runHook(ctx, po, rec); err != nil {
			return res, fmt.Errorf("pull %s: files updated, but %w", ref, err)
		}
	}
	return res, nil
}

// upToDate finishes a pull that found DIR's current version intact: it (re)writes the iPXE
// script if its arguments changed and repairs top-level links and summaries, writing nothing
// when all is as it should be.
func (d *destDir) upToDate(ref content.Reference, po PullOptions, vdir string, rec *Record, log logrus.FieldLogger) (*PullResult, error) {
	extra, err := d.ensureIPXE(po, vdir, rec)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := d.linkTopLevel(po.Arch, rec, extra); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := d.writeSummaries(); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log.Debug("up to date")
	return &PullResult{Updated: false, Record: rec}, nil
}

// recordMatches reports whether rec lists exactly a's files.
func recordMatches(rec *Record, a *artifact.Artifact) bool {
	if len(rec.Files) != len(a.Files) {
		return false
	}
	for i, f := range a.Files {
		r := rec.Files[i]
		if r.Name != f.Name || r.Digest != f.Layer.Digest || r.Size != f.Layer.Size {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a control character (a line break, above all).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// install downloads a's files from src into a new version directory and switches it in.
func (d *destDir) install(ctx context.Context, o *options, src content.BlobFetcher, a *artifact.Artifact, po PullOptions) (*Record, error) {
	versions := d.state(a.Arch, "versions")
	for _, dir := range []string{d.state(a.Arch), versions} {
		if err := d.mkdirPublic(dir); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(versions, "."+a.Index.Digest.Encoded()[:16]+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, publicDirMode); err != nil {
		return nil, err
	}
	rec := &Record{Ref: a.Ref.String(), Arch: a.Arch, IndexDigest: a.Index.Digest, IPAVersion: a.IPAVersion,
		PulledAt: time.Now().UTC().Truncate(time.Second), Ironic: a.IronicURLs()}
	ids, err := d.fetchFiles(ctx, o, src, a, tmp)
	if err != nil {
		return nil, err
	}
	for _, f := range a.Files {
		rec.Files = append(rec.Files, RecordFile{Name: f.Name, Component: string(f.Component), Digest: f.Layer.Digest,
			Size: f.Layer.Size, ManifestDigest: f.Manifest.Digest, MediaType: f.Layer.MediaType})
	}
	if err := writeRecord(filepath.Join(tmp, "record.json"), rec); err != nil {
		return nil, err
	}
	var extra []string
	if po.IPXE {
		name := ipxeName(a.Arch)
		if err := fsutil.WriteFileAtomic(filepath.Join(tmp, name), IPXEScript(rec, po.KernelArgs)); err != nil {
			return nil, err
		}
		extra = append(extra, name)
	}
	if err := fsutil.SyncDir(tmp); err != nil {
		return nil, err
	}
	// A fresh name, also when this index is installed already (a repair): the served version
	// stays complete until current points at the new one.
	vdir := d.newVersionDir(a.Arch, a.Index.Digest)
	if err := os.Rename(tmp, vdir); err != nil {
		return nil, err
	}
	if err := fsutil.SyncDir(versions); err != nil {
		return nil, err
	}
	if err := d.switchTo(a.Arch, vdir, rec, extra); err != nil {
		return nil, err
	}
	if err := d.stampInstalled(vdir, rec, ids); err != nil {
		return nil, err
	}
	return rec, nil
}

// fetchFiles places a's files in dir, reusing local copies whose content matches and
// downloading the others from src concurrently; the first failure cancels the other
// transfers, and fetchFiles returns only once every transfer has stopped. It returns each
// file's fileID as it was when its digest was checked.
func (d *destDir) fetchFiles(ctx context.Context, o *options, src content.BlobFetcher, a *artifact.Artifact, dir string) (map[string]fileID, error) {
	g, gctx := errgroup.WithContext(ctx)
	ids := make([]fileID, len(a.Files))
	for i, f := range a.Files {
		dst := filepath.Join(dir, f.Name)
		g.Go(func() error {
			id, err := d.place(gctx, o, src, f, dst)
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			ids[i] = id
			return nil
		})
	}
	if err := g.Wait(); err != nil { // the first failure, not the cancellations it caused
		return nil, err
	}
	out := map[string]fileID{}
	for i, f := range a.Files {
		out[f.Name] = ids[i]
	}
	return out, nil
}

// place puts f's verified content at dst: a local copy whose content hashes to f's digest,
// or else a download from src.
func (d *destDir) place(ctx context.Context, o *options, src content.BlobFetcher, f artifact.File, dst string) (fileID, error) {
	if candidates := d.localCopies(f.Layer.Digest); len(candidates) > 0 {
		id, ok, err := d.reuseLocal(ctx, o, candidates, dst, f.Layer.Size, f.Layer.Digest)
		if err != nil {
			return fileID{}, err
		}
		if ok {
			o.log.WithFields(map[string]any{"file": f.Name, "digest": f.Layer.Digest}).Debug("reusing local copy (content checked)")
			return id, nil
		}
	}
	return d.download(ctx, o, src, f.Layer, dst)
}

func writeRecord(path string, rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'))
}
