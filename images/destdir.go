package images

import (
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

	"github.com/opencontainers/go-digest"
)

// A pull destination (DIR) looks like this:
//
//	DIR/ironic-python-agent.kernel    -> .ipa-oci/amd64/current/ironic-python-agent.kernel
//	DIR/ironic-python-agent.initramfs -> .ipa-oci/amd64/current/ironic-python-agent.initramfs
//	DIR/boot.ipxe                     -> .ipa-oci/amd64/current/boot.ipxe   (with --ipxe)
//	DIR/SHA256SUMS, DIR/ipa-oci.json     regular files covering every architecture
//	DIR/.ipa-oci/lock                    serialises pulls
//	DIR/.ipa-oci/partial/<hex>.part      interrupted downloads, resumed with HTTP Range
//	DIR/.ipa-oci/<arch>/current          symlink to versions/<id>: switched with one rename,
//	DIR/.ipa-oci/<arch>/previous         so kernel and initramfs change together
//	DIR/.ipa-oci/<arch>/versions/<id>/   complete, verified files + record.json
const stateDirName = ".ipa-oci"

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
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("dest %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("dest %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("dest %s: not a directory; pass the directory your TFTP/HTTP server serves", dir)
	}
	d := &destDir{dir: dir}
	if err := os.MkdirAll(d.state("partial"), 0o755); err != nil {
		return nil, fmt.Errorf("dest %s: %w", dir, err)
	}
	return d, nil
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

// current returns the record of arch's current version, or nil.
func (d *destDir) current(arch string) (*Record, error) {
	return d.readRecord(filepath.Join(d.state(arch, "current"), "record.json"))
}

func (d *destDir) previous(arch string) (*Record, error) {
	return d.readRecord(filepath.Join(d.state(arch, "previous"), "record.json"))
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

// versionDir is where the files of index digest idx for arch live.
func (d *destDir) versionDir(arch string, idx digest.Digest) string {
	return d.state(arch, "versions", idx.Encoded()[:16])
}

// intact reports whether the files of rec are present in its version with the recorded sizes.
func (d *destDir) intact(rec *Record) bool {
	for _, f := range rec.Files {
		st, err := os.Stat(filepath.Join(d.versionDir(rec.Arch, rec.IndexDigest), f.Name))
		if err != nil || st.Size() != f.Size {
			return false
		}
	}
	return true
}

// findLocal returns a path in any version of any architecture holding a file with digest dg.
func (d *destDir) findLocal(dg digest.Digest) string {
	recs, _ := filepath.Glob(d.state("*", "versions", "*", "record.json"))
	for _, p := range recs {
		rec, err := d.readRecord(p)
		if err != nil || rec == nil {
			continue
		}
		for _, f := range rec.Files {
			if f.Digest == dg {
				path := filepath.Join(filepath.Dir(p), f.Name)
				if st, err := os.Stat(path); err == nil && st.Size() == f.Size {
					return path
				}
			}
		}
	}
	return ""
}

// switchTo makes version dir (relative name under versions/) current for arch, keeping the old
// current as previous, then points the top-level names at it and rewrites the summaries.
func (d *destDir) switchTo(arch string, rec *Record, extraNames []string) error {
	id := filepath.Base(d.versionDir(arch, rec.IndexDigest))
	old, _ := os.Readlink(d.state(arch, "current"))
	if err := replaceSymlink(filepath.Join("versions", id), d.state(arch, "current")); err != nil {
		return err
	}
	if old != "" && filepath.Base(old) != id {
		if err := replaceSymlink(old, d.state(arch, "previous")); err != nil {
			return err
		}
	}
	if err := syncDir(d.state(arch)); err != nil { // the switch itself survives a crash
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
	return syncDir(d.dir)
}

// writeSummaries rewrites DIR/SHA256SUMS and DIR/ipa-oci.json from every architecture's current record.
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
	if err := writeFileAtomic(filepath.Join(d.dir, "SHA256SUMS"), []byte(strings.Join(lines, ""))); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(d.dir, "ipa-oci.json"), append(b, '\n'))
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

// linkOrCopy places the verified file src at dst (hard link, or a copy across filesystems).
func linkOrCopy(ctx context.Context, src, dst string, dg digest.Digest, size int64) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeVerified(ctx, dst, f, descriptorOf(dg, size), nil)
}
