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
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions says where and how to place an artifact on a boot server.
type PullOptions struct {
	Dest       string        // directory served over TFTP/HTTP
	Arch       string        // amd64 (default) or arm64
	Pin        digest.Digest // refuse any other index digest
	IPXE       bool          // also write boot.ipxe (boot_aarch64.ipxe for arm64)
	KernelArgs []string      // kernel command line arguments for boot.ipxe
	Exec       string        // shell command run after a real update
}

// PullResult says what a pull did.
type PullResult struct {
	Updated bool    // false: DIR already held this index; nothing was written
	Record  *Record // the arch's current record after the pull
}

// Pull places ref's kernel and initramfs for po.Arch in po.Dest: every blob is streamed to a
// partial file while hashed, verified at EOF, fsynced and renamed into a new version directory;
// then the version is switched in with one rename, the previous one kept for Rollback. When DIR
// already holds the index ref points at, Pull costs one manifest request and writes nothing.
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
	cur, err := d.current(po.Arch)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if cur != nil && cur.IndexDigest == idxDesc.Digest && d.intact(cur) {
		extra, err := d.ensureIPXE(po, cur)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		if err := d.linkTopLevel(po.Arch, cur, extra); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		log.WithField("index", idxDesc.Digest).Debug("up to date")
		return &PullResult{Updated: false, Record: cur}, nil
	}

	a, err := resolveArtifact(ctx, r, idxDesc, po.Arch)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	rec, err := d.install(ctx, o, a, po)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log.WithFields(map[string]any{"index": rec.IndexDigest, "version": rec.IPAVersion}).Info("updated")
	if po.Exec != "" {
		if err := runHook(ctx, po, rec); err != nil {
			return &PullResult{Updated: true, Record: rec}, fmt.Errorf("pull %s: files updated, but --exec failed: %w", ref, err)
		}
	}
	return &PullResult{Updated: true, Record: rec}, nil
}

// install downloads a's files into a new version directory and switches it in.
func (d *destDir) install(ctx context.Context, o *options, a *Artifact, po PullOptions) (*Record, error) {
	vdir := d.versionDir(a.Arch, a.Index.Digest)
	if err := os.MkdirAll(filepath.Dir(vdir), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(vdir), "."+filepath.Base(vdir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rec := &Record{Ref: a.Ref.String(), Arch: a.Arch, IndexDigest: a.Index.Digest, IPAVersion: a.IPAVersion,
		PulledAt: time.Now().UTC().Truncate(time.Second)}
	if err := d.fetchFiles(ctx, o, a, tmp); err != nil {
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
	if _, err := os.Stat(vdir); err == nil {
		// Same index pulled before but damaged or re-pulled after rollback: move it aside.
		aside := fmt.Sprintf("%s.old-%d", vdir, os.Getpid())
		if err := os.Rename(vdir, aside); err != nil {
			return nil, err
		}
		defer os.RemoveAll(aside)
	}
	if err := os.Rename(tmp, vdir); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(vdir)); err != nil {
		return nil, err
	}
	if err := d.switchTo(a.Arch, rec, extra); err != nil {
		return nil, err
	}
	return rec, nil
}

// fetchFiles places a's files in dir, reusing identical local copies and downloading the
// others concurrently; the first failure cancels the other transfers.
func (d *destDir) fetchFiles(ctx context.Context, o *options, a *Artifact, dir string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(a.Files))
	var wg sync.WaitGroup
	for i, f := range a.Files {
		dst := filepath.Join(dir, f.Name)
		if local := d.findLocal(f.Layer.Digest); local != "" {
			o.log.WithFields(map[string]any{"file": f.Name, "digest": f.Layer.Digest}).Debug("reusing local copy")
			if err := linkOrCopy(ctx, local, dst, f.Layer.Digest, f.Layer.Size); err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.download(ctx, o, a.Ref.Target, f.Layer, dst); err != nil {
				errs[i] = fmt.Errorf("%s: %w", f.Name, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs { // the first real failure, not the cancellation it caused
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// download fetches desc into dst through DIR/.ipa-oci/partial/<hex>.part, resuming a partial
// file left by an interrupted pull with an HTTP Range request, and retrying broken transfers
// from where they stopped. A digest or size mismatch discards the partial file.
func (d *destDir) download(ctx context.Context, o *options, t Target, desc ocispec.Descriptor, dst string) error {
	part := d.state("partial", desc.Digest.Encoded()+".part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	wb := &writeback{f: f}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > desc.Size { // not a prefix of this blob
		if err := f.Truncate(0); err != nil {
			return err
		}
	}
	ah := newAsyncHasher(sha256.New())
	defer ah.stop()
	vw := newVerifyingWriter(wb, desc)
	vw.h = ah
	have, err := io.Copy(ah, f) // hash what an earlier pull left; the file offset ends at its end
	if err != nil {
		return err
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
		return err
	}
	if err != nil {
		f.Sync() // keep what arrived for the next run to resume
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, dst); err != nil {
		return err
	}
	return nil
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

// ensureIPXE (re)writes the iPXE script of an up-to-date version when it is missing or its
// arguments changed, returning the extra top-level names to link.
func (d *destDir) ensureIPXE(po PullOptions, rec *Record) ([]string, error) {
	if !po.IPXE {
		return nil, nil
	}
	name := ipxeName(rec.Arch)
	path := filepath.Join(d.versionDir(rec.Arch, rec.IndexDigest), name)
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
// it works served over TFTP or HTTP from the same directory.
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
	fmt.Fprintf(&b, "#!ipxe\n# Written by ipa-oci pull: %s (index %s, IPA %s)\n", rec.Ref, rec.IndexDigest, rec.IPAVersion)
	fmt.Fprintf(&b, "kernel %s %s\n", kernel, strings.Join(args, " "))
	fmt.Fprintf(&b, "initrd %s\n", initrd)
	b.WriteString("boot\n")
	return []byte(b.String())
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
	prev, err := d.previous(arch)
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	if prev == nil || !d.intact(prev) {
		return nil, fmt.Errorf("rollback %s: no previous %s version kept; nothing to roll back to", dir, arch)
	}
	var extra []string
	if _, err := os.Stat(filepath.Join(d.versionDir(arch, prev.IndexDigest), ipxeName(arch))); err == nil {
		extra = append(extra, ipxeName(arch))
	}
	if err := d.switchTo(arch, prev, extra); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	return prev, nil
}
