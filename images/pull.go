package images

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"

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
	// registry, instead of trusting files that stat(2) says nobody touched since they were checked.
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

// Pull places ref's kernel and initramfs for po.Arch in po.Dest: every blob is streamed to a
// partial file while hashed, verified at EOF, fsynced and renamed into a new version directory;
// then the version is switched in with one rename, the previous one kept for Rollback. A file
// already in DIR is reused (hard-linked) only after its content is hashed.
//
// When DIR already holds the index ref points at, Pull costs one manifest request, a few
// stat(2) calls and writes nothing: a served file whose inode, size, mtime or ctime changed
// since its digest was checked is hashed again, and downloaded again when it does not match.
func Pull(ctx context.Context, ref string, po PullOptions, opts ...Option) (*PullResult, error) {
	o := makeOptions(opts...)
	r, err := ParseReference(ref, opts...)
	if err != nil {
		return nil, err
	}
	if po.Arch == "" {
		po.Arch = DefaultArch
	}
	if err := ValidateArch(po.Arch); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	for _, arg := range po.KernelArgs {
		if hasControl(arg) {
			return nil, fmt.Errorf("pull %s: kernel argument %q contains a line break or another control character, which would add lines to boot.ipxe; give each argument on its own (--kernel-arg)", ref, arg)
		}
	}
	d, err := openDestDir(po.Dest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log := o.log.WithFields(map[string]any{"ref": ref, "arch": po.Arch, "dest": po.Dest})
	unlock, err := d.lock(ctx, func(msg string) { log.Info(msg) })
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer unlock()

	idxDesc := ocispec.Descriptor{Digest: r.Digest}
	if r.Digest == "" {
		if idxDesc, err = r.Target.Resolve(ctx, r.Tag); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	if po.Pin != "" && idxDesc.Digest != po.Pin {
		return nil, fmt.Errorf("pull %s: it resolves to %s but --pin is %s; refusing (update the pin to accept it)", ref, idxDesc.Digest, po.Pin)
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

	a, err := resolveArtifact(ctx, r, idxDesc, po.Arch)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if hasControl(a.IPAVersion) {
		return nil, fmt.Errorf("pull %s: index %s: annotation %s %q contains a line break or another control character; refusing it (it would be written into boot.ipxe)",
			ref, a.Index.Digest, ocispec.AnnotationVersion, a.IPAVersion)
	}
	if same && len(damaged) == 0 {
		// --verify-local: every file hashed and matching; the record must list what the registry does.
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
	rec, err := d.install(ctx, o, a, po)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log.WithFields(map[string]any{"index": rec.IndexDigest, "version": rec.IPAVersion}).Info("updated")
	res := &PullResult{Updated: true, Record: rec, Repaired: repaired}
	if po.Exec != "" {
		if err := runHook(ctx, po, rec); err != nil {
			return res, fmt.Errorf("pull %s: files updated, but --exec failed: %w", ref, err)
		}
	}
	return res, nil
}

// upToDate finishes a pull that found DIR's current version intact: it (re)writes the iPXE
// script if its arguments changed and repairs top-level links and summaries, writing nothing
// when all is as it should be.
func (d *destDir) upToDate(ref string, po PullOptions, vdir string, rec *Record, log logrus.FieldLogger) (*PullResult, error) {
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
func recordMatches(rec *Record, a *Artifact) bool {
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

// install downloads a's files into a new version directory and switches it in.
func (d *destDir) install(ctx context.Context, o *options, a *Artifact, po PullOptions) (*Record, error) {
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
		PulledAt: time.Now().UTC().Truncate(time.Second)}
	ids, err := d.fetchFiles(ctx, o, a, tmp)
	if err != nil {
		return nil, err
	}
	for _, f := range a.Files {
		rec.Files = append(rec.Files, RecordFile{Name: f.Name, Component: string(f.Component), Digest: f.Layer.Digest,
			Size: f.Layer.Size, ManifestDigest: f.Manifest.Digest, MediaType: f.Layer.MediaType})
		if u := a.IronicURL(f); u != "" {
			if rec.Ironic == nil {
				rec.Ironic = map[string]string{}
			}
			rec.Ironic[f.Component.IronicSetting()] = u
		}
	}
	if err := writeRecord(filepath.Join(tmp, "record.json"), rec); err != nil {
		return nil, err
	}
	var extra []string
	if po.IPXE {
		name := ipxeName(a.Arch)
		if err := writeFileAtomic(filepath.Join(tmp, name), IPXEScript(rec, po.KernelArgs)); err != nil {
			return nil, err
		}
		extra = append(extra, name)
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	// A fresh name, also when this index is installed already (a repair): the served version
	// stays complete until current points at the new one.
	vdir := d.newVersionDir(a.Arch, a.Index.Digest)
	if err := os.Rename(tmp, vdir); err != nil {
		return nil, err
	}
	if err := syncDir(versions); err != nil {
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
// downloading the others concurrently; the first failure cancels the other transfers, and
// fetchFiles returns only once every transfer has stopped. It returns each file's fileID as
// it was when its digest was checked.
func (d *destDir) fetchFiles(ctx context.Context, o *options, a *Artifact, dir string) (map[string]fileID, error) {
	g, gctx := errgroup.WithContext(ctx)
	ids := make([]fileID, len(a.Files))
	for i, f := range a.Files {
		dst := filepath.Join(dir, f.Name)
		g.Go(func() error {
			id, err := d.place(gctx, o, a.Ref.Target, f, dst)
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
// or else a download.
func (d *destDir) place(ctx context.Context, o *options, t Target, f File, dst string) (fileID, error) {
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
	return d.download(ctx, o, t, f.Layer, dst)
}

// download fetches desc into dst through DIR/.ipa-oci/partial/<hex>.part, resuming a partial
// file left by an interrupted pull with an HTTP Range request, and retrying broken transfers
// from where they stopped. A digest or size mismatch discards the partial file.
func (d *destDir) download(ctx context.Context, o *options, t Target, desc ocispec.Descriptor, dst string) (fileID, error) {
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
	ah := newAsyncHasher(sha256.New())
	defer ah.stop()
	vw := newVerifyingWriter(wb, desc)
	vw.h = ah
	have, err := io.Copy(ah, f) // hash what an earlier pull left; the file offset ends at its end
	if err != nil {
		return fileID{}, err
	}
	vw.n = have
	wb.written, wb.flush = have, have
	log := o.log.WithFields(map[string]any{"digest": desc.Digest, "size": desc.Size})
	if have > 0 {
		log.WithField("offset", have).Info("resuming interrupted download")
	}
	var w io.Writer = vw
	var bar *progressBar
	if o.progress != nil {
		bar = newProgressBar(o.progress, desc.Size, "pull "+shortDigest(desc.Digest))
		_ = bar.bar.Set64(have)
		w = io.MultiWriter(vw, bar)
		defer bar.finish()
	}
	err = o.retryResumable(ctx, "fetch blob "+desc.Digest.String(), func() (bool, error) {
		start := vw.n
		if start == desc.Size {
			return false, nil
		}
		if start > 0 {
			log.WithField("offset", start).Debug("requesting the rest of the blob")
		}
		err := fetchInto(ctx, t, desc, start, w)
		return vw.n > start, err
	})
	if err == nil {
		err = vw.check()
	}
	if se := (*statusError)(nil); errors.As(err, &se) && se.code == http.StatusRequestedRangeNotSatisfiable {
		// The registry's blob ends where the partial file does: it is shorter than the descriptor says.
		err = fmt.Errorf("blob %s: the registry's blob ends at %d bytes, descriptor says %d: %w", desc.Digest, vw.n, desc.Size, ErrDigestMismatch)
	}
	if errors.Is(err, ErrDigestMismatch) {
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

// fetchInto copies desc's bytes from offset into w.
func fetchInto(ctx context.Context, t Target, desc ocispec.Descriptor, offset int64, w io.Writer) error {
	rc, err := t.FetchBlob(ctx, desc, offset)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := copyCtx(ctx, w, rc)
	if err == nil && offset+n < desc.Size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ensureIPXE (re)writes the iPXE script of an up-to-date version (in vdir) when it is missing
// or differs from what rec and the arguments give, returning the extra top-level names to link.
func (d *destDir) ensureIPXE(po PullOptions, vdir string, rec *Record) ([]string, error) {
	if !po.IPXE {
		return nil, nil
	}
	name := ipxeName(rec.Arch)
	path := filepath.Join(vdir, name)
	want := IPXEScript(rec, po.KernelArgs)
	if have, err := os.ReadFile(path); err != nil || string(have) != string(want) {
		if err := writeFileAtomic(path, want); err != nil {
			return nil, err
		}
	}
	return []string{name}, nil
}

func ipxeName(arch string) string {
	if arch == DefaultArch {
		return "boot.ipxe"
	}
	return "boot_" + unameMachine(arch) + ".ipxe"
}

// IPXEScript returns an iPXE script that boots rec's kernel and initramfs by relative path, so
// it works served over TFTP or HTTP from the same directory. Control characters in any value
// (Pull refuses them) are written as '?', so that no value can add a line to the script.
func IPXEScript(rec *Record, kernelArgs []string) []byte {
	var kernel, initrd string
	for _, f := range rec.Files {
		switch Component(f.Component) {
		case Kernel:
			kernel = f.Name
		case Initramfs:
			initrd = f.Name
		}
	}
	args := append([]string{"initrd=" + initrd}, kernelArgs...)
	var b strings.Builder
	fmt.Fprintf(&b, "#!ipxe\n# Written by ipa-oci pull: %s (index %s, IPA %s)\n", oneLine(rec.Ref), oneLine(rec.IndexDigest.String()), oneLine(rec.IPAVersion))
	fmt.Fprintf(&b, "kernel %s %s\n", oneLine(kernel), oneLine(strings.Join(args, " ")))
	fmt.Fprintf(&b, "initrd %s\n", oneLine(initrd))
	b.WriteString("boot\n")
	return []byte(b.String())
}

// oneLine replaces control characters (line breaks above all) in s with '?'.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

func writeRecord(path string, rec *Record) error {
	b, err := jsonIndent(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// runHook runs po.Exec through sh after an update, with the update described in the environment.
func runHook(ctx context.Context, po PullOptions, rec *Record) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", po.Exec)
	cmd.Dir = po.Dest
	cmd.Env = append(os.Environ(), "IPA_OCI_DEST="+po.Dest, "IPA_OCI_ARCH="+rec.Arch,
		"IPA_OCI_INDEX_DIGEST="+rec.IndexDigest.String(), "IPA_OCI_VERSION="+rec.IPAVersion)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%q: %w: %s", po.Exec, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Rollback switches arch in dir back to the version before the current one.
func Rollback(ctx context.Context, dir, arch string) (*Record, error) {
	if arch == "" {
		arch = DefaultArch
	}
	d, err := openDestDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	unlock, err := d.lock(ctx, func(string) {})
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	defer unlock()
	prevDir, prev, err := d.linked(arch, "previous")
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	if prev == nil {
		return nil, fmt.Errorf("rollback %s: no previous %s version kept; nothing to roll back to", dir, arch)
	}
	// The previous version's files are served after the switch: check them first.
	bad, err := d.checkFiles(ctx, prevDir, prev, false)
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("rollback %s: the previous %s version is damaged (%s); nothing rolled back (pull by digest to restore it)", dir, arch, bad[0])
	}
	if err := d.ensurePublic(arch, prevDir); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	var extra []string
	if _, err := os.Stat(filepath.Join(prevDir, ipxeName(arch))); err == nil {
		extra = append(extra, ipxeName(arch))
	}
	if err := d.switchTo(arch, prevDir, prev, extra); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	return prev, nil
}
