// Package bootdir is the directory a PXE/HTTP boot server serves (DIR): versions switched in
// with one symlink rename, the previous one kept for Rollback, a lock, SHA256SUMS and
// ipa-oci.json, boot.ipxe, stat stamps for the cheap up-to-date check, and Pull, which places
// an artifact there from any content source with every digest verified, and Verify.
package bootdir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/opencontainers/go-digest"
)

// A pull destination (DIR) looks like this:
//
//	DIR/ironic-python-agent.kernel    -> .ipa-oci/amd64/current/ironic-python-agent.kernel
//	DIR/ironic-python-agent.initramfs -> .ipa-oci/amd64/current/ironic-python-agent.initramfs
//	DIR/boot.ipxe                     -> .ipa-oci/amd64/current/boot.ipxe   (with --ipxe)
//	DIR/SHA256SUMS, DIR/ipa-oci.json     regular files covering every architecture
//	DIR/.ipa-oci/lock                    serialises pulls
//	DIR/.ipa-oci/stamps.json             stat(2) of each served file when its digest was checked
//	DIR/.ipa-oci/partial/<hex>.part      interrupted downloads, resumed with HTTP Range
//	DIR/.ipa-oci/<arch>/current          symlink to versions/<id>: switched with one rename,
//	DIR/.ipa-oci/<arch>/previous         so kernel and initramfs change together
//	DIR/.ipa-oci/<arch>/versions/<id>/   complete, verified files + record.json
//
// Whatever a TFTP or HTTP server reads (the files, and every directory on the way to them) is
// made world-readable (0644 files, 0755 directories) whatever the puller's umask: servers run
// as their own unprivileged users (tftpd-hpa as tftp, nginx as www-data). The lock, the stamps
// and partial downloads are not served.
const stateDirName = ".ipa-oci"

// Modes of what is served.
const (
	publicDirMode  fs.FileMode = 0o755
	publicFileMode fs.FileMode = 0o644
)

// Record describes one architecture's files in a pull destination (ipa-oci.json).
type Record struct {
	Ref         string        `json:"ref"`
	Arch        string        `json:"arch"`
	IndexDigest digest.Digest `json:"index_digest"`
	IPAVersion  string        `json:"ipa_version,omitempty"`
	PulledAt    time.Time     `json:"pulled_at"`
	Files       []RecordFile  `json:"files"`
	// Ironic holds the deploy_kernel/deploy_ramdisk values for these files (registry refs only).
	Ironic map[string]string `json:"ironic,omitempty"`
}

// RecordFile is one pulled file.
type RecordFile struct {
	Name           string        `json:"name"`
	Component      string        `json:"component"`
	Digest         digest.Digest `json:"digest"`
	Size           int64         `json:"size"`
	ManifestDigest digest.Digest `json:"manifest_digest,omitempty"`
	MediaType      string        `json:"media_type,omitempty"`
}

// Summary is DIR/ipa-oci.json: the current record of every architecture pulled into DIR.
type Summary struct {
	SchemaVersion int      `json:"schema_version"`
	Artifacts     []Record `json:"artifacts"`
}

// destDir is a pull destination.
type destDir struct {
	dir string
}

func openDestDir(dir string) (*destDir, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := mkdirPublic(dir); err != nil {
			return nil, fmt.Errorf("dest %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("dest %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("dest %s: not a directory; pass the directory your TFTP/HTTP server serves", dir)
	}
	d := &destDir{dir: dir}
	if err := d.mkdirPublic(d.state()); err != nil {
		return nil, fmt.Errorf("dest %s: %w", dir, err)
	}
	if err := os.MkdirAll(d.state("partial"), 0o755); err != nil {
		return nil, fmt.Errorf("dest %s: %w", dir, err)
	}
	return d, nil
}

// mkdirPublic creates dir and its missing parents with mode 0755, whatever the umask.
func mkdirPublic(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirPublic(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, publicDirMode); errors.Is(err, fs.ErrExist) {
		return nil // made meanwhile by someone else: theirs to choose
	} else if err != nil {
		return err
	}
	return os.Chmod(dir, publicDirMode) // Mkdir applied the umask
}

// mkdirPublic creates dir (inside DIR) if needed and makes sure servers can traverse and list it.
func (d *destDir) mkdirPublic(dir string) error {
	if err := mkdirPublic(dir); err != nil {
		return err
	}
	return makePublic(dir, publicDirMode)
}

// makePublic adds the read (and, for directories, search) bits servers need to path's mode,
// leaving it alone when they are there: a pull that changes nothing writes nothing.
func makePublic(path string, want fs.FileMode) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 || st.Mode().Perm()&want == want {
		return nil
	}
	return os.Chmod(path, st.Mode().Perm()|want)
}

// ensurePublic makes what DIR serves from arch's version vdir readable by any user: the
// directories from DIR down to vdir, the files in it, and the summaries. Pulls by older
// ipa-oci releases under a strict umask left them 0700/0600.
func (d *destDir) ensurePublic(arch, vdir string) error {
	for _, dir := range []string{d.state(), d.state(arch), d.state(arch, "versions"), vdir} {
		if err := makePublic(dir, publicDirMode); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := makePublic(filepath.Join(vdir, e.Name()), 0o444); err != nil {
				return err
			}
		}
	}
	for _, name := range []string{"SHA256SUMS", "ipa-oci.json"} {
		if err := makePublic(filepath.Join(d.dir, name), 0o444); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (d *destDir) state(parts ...string) string {
	return filepath.Join(append([]string{d.dir, stateDirName}, parts...)...)
}

// lock takes the destination's exclusive lock, waiting for another pull to finish.
func (d *destDir) lock(ctx context.Context, log func(string)) (unlock func(), err error) {
	f, err := os.OpenFile(d.state("lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", d.dir, err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", d.dir, err)
		}
		if !waited {
			log("another ipa-oci pull holds " + d.state("lock") + "; waiting")
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// linked returns the version directory that arch's link ("current" or "previous") points at,
// and its record; both empty when there is none.
func (d *destDir) linked(arch, link string) (string, *Record, error) {
	t, err := os.Readlink(d.state(arch, link))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	} else if err != nil {
		return "", nil, err
	}
	vdir := filepath.Join(d.state(arch), t)
	rec, err := d.readRecord(filepath.Join(vdir, "record.json"))
	if err != nil || rec == nil {
		return "", nil, err
	}
	return vdir, rec, nil
}

func (d *destDir) readRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// newVersionDir returns a free name for a version directory of index idx for arch:
// versions/<16 hex digits of idx>, or with -2, -3... appended when an earlier copy of the same
// index is still there (re-installing a damaged version never touches the served one).
func (d *destDir) newVersionDir(arch string, idx digest.Digest) string {
	base := d.state(arch, "versions", idx.Encoded()[:16])
	for n := 1; ; n++ {
		p := base
		if n > 1 {
			p = fmt.Sprintf("%s-%d", base, n)
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
	}
}

// switchTo makes version directory vdir (holding rec) current for arch, then points the
// top-level names at it and rewrites the summaries. The old current becomes previous, unless
// it holds the same index (a repaired copy), which is then dropped and previous kept.
func (d *destDir) switchTo(arch, vdir string, rec *Record, extraNames []string) error {
	id := filepath.Base(vdir)
	oldDir, oldRec, err := d.linked(arch, "current")
	if err != nil {
		return err
	}
	if err := replaceSymlink(filepath.Join("versions", id), d.state(arch, "current")); err != nil {
		return err
	}
	if oldDir != "" && filepath.Base(oldDir) != id && (oldRec == nil || oldRec.IndexDigest != rec.IndexDigest) {
		if err := replaceSymlink(filepath.Join("versions", filepath.Base(oldDir)), d.state(arch, "previous")); err != nil {
			return err
		}
	}
	if err := fsutil.SyncDir(d.state(arch)); err != nil { // the switch itself survives a crash
		return err
	}
	if err := d.linkTopLevel(arch, rec, extraNames); err != nil {
		return err
	}
	if err := d.writeSummaries(); err != nil {
		return err
	}
	return d.gc(arch)
}

// linkTopLevel makes DIR/<name> a symlink into arch's current version for every file.
func (d *destDir) linkTopLevel(arch string, rec *Record, extraNames []string) error {
	names := extraNames
	for _, f := range rec.Files {
		names = append(names, f.Name)
	}
	for _, n := range names {
		target := filepath.Join(stateDirName, arch, "current", n)
		if cur, err := os.Readlink(filepath.Join(d.dir, n)); err == nil && cur == target {
			continue
		}
		if err := replaceSymlink(target, filepath.Join(d.dir, n)); err != nil {
			return err
		}
	}
	return fsutil.SyncDir(d.dir)
}

// writeSummaries rewrites DIR/SHA256SUMS and DIR/ipa-oci.json from every architecture's
// current record where their content differs.
func (d *destDir) writeSummaries() error {
	archs, _ := filepath.Glob(d.state("*", "current"))
	sum := Summary{SchemaVersion: 1, Artifacts: []Record{}}
	var lines []string
	for _, p := range archs {
		rec, err := d.readRecord(filepath.Join(p, "record.json"))
		if err != nil {
			return err
		}
		if rec == nil {
			continue
		}
		sum.Artifacts = append(sum.Artifacts, *rec)
		for _, f := range rec.Files {
			lines = append(lines, fmt.Sprintf("%s  %s\n", f.Digest.Encoded(), f.Name))
		}
	}
	sort.Strings(lines)
	sort.Slice(sum.Artifacts, func(i, j int) bool { return sum.Artifacts[i].Arch < sum.Artifacts[j].Arch })
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(d.dir, "SHA256SUMS"), []byte(strings.Join(lines, ""))); err != nil {
		return err
	}
	return writeIfChanged(filepath.Join(d.dir, "ipa-oci.json"), append(b, '\n'))
}

// writeIfChanged writes data to path (atomically) unless path already holds exactly data.
func writeIfChanged(path string, data []byte) error {
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, data) {
		return nil
	}
	return fsutil.WriteFileAtomic(path, data)
}

// gc removes versions of arch that are neither current nor previous, and stale partial files.
func (d *destDir) gc(arch string) error {
	keep := map[string]bool{}
	for _, l := range []string{"current", "previous"} {
		if t, err := os.Readlink(d.state(arch, l)); err == nil {
			keep[filepath.Base(t)] = true
		}
	}
	entries, _ := os.ReadDir(d.state(arch, "versions"))
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.RemoveAll(d.state(arch, "versions", e.Name())); err != nil {
				return err
			}
		}
	}
	// Partial downloads nobody resumed for a day belong to versions that never came.
	parts, _ := os.ReadDir(d.state("partial"))
	for _, e := range parts {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > stalePartialAge {
			os.Remove(d.state("partial", e.Name()))
		}
	}
	return nil
}

// stalePartialAge is how long an interrupted download is kept for resuming.
const stalePartialAge = 24 * time.Hour

// readSummary reads DIR/ipa-oci.json.
func readSummary(dir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ipa-oci.json"))
	if err != nil {
		return nil, fmt.Errorf("%s: no ipa-oci.json (was it filled by ipa-oci pull?): %w", dir, err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s/ipa-oci.json: %w", dir, err)
	}
	return &s, nil
}

// replaceSymlink atomically makes link point at target.
func replaceSymlink(target, link string) error {
	tmp := fmt.Sprintf("%s.tmp-%d", link, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
