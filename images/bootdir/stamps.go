package bootdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A pulled file is trusted without reading it again only while stat(2) says nothing touched it
// since its digest was last checked. DIR/.ipa-oci/stamps.json records, per served file, its
// digest and the device, inode, size, mtime and ctime it had then: writing to the file changes
// mtime and ctime, resetting mtime (touch -d, utimensat) changes ctime, replacing it changes the
// inode. Any difference and the file is hashed again before it is served or reused.
const stampsName = "stamps.json"

// fileID is what stat(2) says about a file: enough to tell that it was written to or replaced.
type fileID struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Ctime int64  `json:"ctime_ns"`
}

// sameContentID reports whether a and b are the same inode with the same size and mtime: ctime
// aside, which link(2), unlink(2) and chmod(2) of the file by ipa-oci itself change too.
func (a fileID) sameContentID(b fileID) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.Mtime == b.Mtime
}

// stamp is a fileID whose content was checked against Digest.
type stamp struct {
	Digest digest.Digest `json:"digest"`
	fileID
}

func idOf(st os.FileInfo) fileID {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{Size: st.Size(), Mtime: st.ModTime().UnixNano()}
	}
	return fileID{Dev: uint64(sys.Dev), Ino: sys.Ino, Size: st.Size(),
		Mtime: st.ModTime().UnixNano(), Ctime: sys.Ctim.Sec*1e9 + sys.Ctim.Nsec}
}

// statID returns the fileID of the regular file at path (not following a final symlink).
func statID(path string) (fileID, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return fileID{}, err
	}
	if !st.Mode().IsRegular() {
		return fileID{}, fmt.Errorf("%s: not a regular file", path)
	}
	return idOf(st), nil
}

// stamps are the stamps of a destination, by path relative to DIR.
type stamps map[string]stamp

func (d *destDir) readStamps() stamps {
	s := stamps{}
	b, err := os.ReadFile(d.state(stampsName))
	if err == nil {
		_ = json.Unmarshal(b, &s) // unreadable stamps: everything is hashed again
	}
	return s
}

func (d *destDir) writeStamps(s stamps) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(d.state(stampsName), append(b, '\n'))
}

func (d *destDir) rel(path string) string {
	r, err := filepath.Rel(d.dir, path)
	if err != nil {
		return path
	}
	return r
}

// damage is a file that does not hold what its record says.
type damage struct {
	Name, Reason string
}

func (x damage) String() string { return x.Name + ": " + x.Reason }

// checkFiles checks that every file of rec in version directory vdir holds its recorded
// digest. A file whose stamp still matches is trusted (a few stat calls); any other file, or
// every file when full is set, is hashed, and stamped again when it matches. It returns the
// files that do not match; err is for the stamps file only.
func (d *destDir) checkFiles(ctx context.Context, vdir string, rec *Record, full bool) ([]damage, error) {
	s := d.readStamps()
	changed := false
	var bad []damage
	for _, f := range rec.Files {
		path := filepath.Join(vdir, f.Name)
		key := d.rel(path)
		id, err := statID(path)
		if err != nil {
			bad = append(bad, damage{f.Name, err.Error()})
			continue
		}
		if st, ok := s[key]; ok && !full && st.Digest == f.Digest && st.fileID == id {
			continue
		}
		got, err := hashFile(ctx, path, id)
		switch {
		case err != nil:
			bad = append(bad, damage{f.Name, err.Error()})
		case id.Size != f.Size:
			bad = append(bad, damage{f.Name, fmt.Sprintf("size %d, recorded %d", id.Size, f.Size)})
		case got != f.Digest:
			bad = append(bad, damage{f.Name, fmt.Sprintf("digest %s, recorded %s (modified in place?)", got, f.Digest)})
		default:
			s[key] = stamp{Digest: f.Digest, fileID: id}
			changed = true
			continue
		}
		if _, ok := s[key]; ok {
			delete(s, key)
			changed = true
		}
	}
	if changed {
		return bad, d.writeStamps(s)
	}
	return bad, nil
}

// hashFile returns the sha256 digest of the file at path, whose fileID was id before reading:
// if the file changes while it is read, that is an error.
func hashFile(ctx context.Context, path string, id fileID) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, _, err := content.Digest(ctx, f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if after := idOf(st); !after.sameContentID(id) {
		return "", fmt.Errorf("%s changed while it was read", path)
	}
	return d, nil
}

// stampInstalled records the stamps of the files just switched in as arch's current version
// (vdir), whose fileIDs were ids when their digests were checked, and drops stamps of files no
// longer in any version. A file that changed since it was checked (other than ipa-oci's own
// link/unlink/chmod, which change only ctime) is left unstamped: the next pull hashes it.
func (d *destDir) stampInstalled(vdir string, rec *Record, ids map[string]fileID) error {
	s := d.readStamps()
	for _, f := range rec.Files {
		path := filepath.Join(vdir, f.Name)
		key := d.rel(path)
		delete(s, key)
		id, err := statID(path)
		if err != nil {
			return err
		}
		if want, ok := ids[f.Name]; ok && want.sameContentID(id) {
			s[key] = stamp{Digest: f.Digest, fileID: id}
		}
	}
	for key := range s {
		if _, err := os.Lstat(filepath.Join(d.dir, key)); errors.Is(err, fs.ErrNotExist) {
			delete(s, key)
		}
	}
	return d.writeStamps(s)
}

// localCopies returns the files in DIR's versions (any architecture) recorded with digest dg,
// the current versions first. They are candidates only: reuse checks their content.
func (d *destDir) localCopies(dg digest.Digest) []string {
	recs, _ := filepath.Glob(d.state("*", "versions", "*", "record.json"))
	current := map[string]bool{}
	for _, c := range mustGlob(d.state("*", "current")) {
		if t, err := os.Readlink(c); err == nil {
			current[filepath.Join(filepath.Dir(c), t)] = true
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		return current[filepath.Dir(recs[i])] && !current[filepath.Dir(recs[j])]
	})
	var out []string
	for _, p := range recs {
		rec, err := d.readRecord(p)
		if err != nil || rec == nil {
			continue
		}
		for _, f := range rec.Files {
			if f.Digest == dg {
				out = append(out, filepath.Join(filepath.Dir(p), f.Name))
			}
		}
	}
	return out
}

func mustGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// reuseLocal places a verified copy of a local file with desc's content at dst: a hard link
// of the first candidate whose bytes hash to desc's digest (or a verified copy across file
// systems). Candidates that do not match are logged and skipped. ok is false when none did.
func (d *destDir) reuseLocal(ctx context.Context, o *options, candidates []string, dst string, size int64, dg digest.Digest) (id fileID, ok bool, err error) {
	for _, src := range candidates {
		srcID, err := statID(src)
		if err != nil || srcID.Size != size {
			continue
		}
		if err := os.Link(src, dst); err != nil {
			// Another file system (or no hard links): copy, verifying as it streams.
			f, err := os.Open(src)
			if err != nil {
				continue
			}
			err = content.WriteVerified(ctx, dst, f, ocispec.Descriptor{Digest: dg, Size: size})
			f.Close()
			if errors.Is(err, content.ErrDigestMismatch) {
				o.log.WithFields(map[string]any{"file": d.rel(src), "digest": dg}).Warn("local copy does not match its recorded digest; not reusing it")
				continue
			} else if err != nil {
				return fileID{}, false, err
			}
			id, err := statID(dst)
			return id, err == nil, err
		}
		if err := makePublic(dst, 0o444); err != nil { // (written by an older ipa-oci under a strict umask)
			return fileID{}, false, err
		}
		id, err := statID(dst)
		if err != nil {
			return fileID{}, false, err
		}
		got, err := hashFile(ctx, dst, id)
		if err != nil {
			return fileID{}, false, err
		}
		if got != dg {
			o.log.WithFields(map[string]any{"file": d.rel(src), "digest": dg, "content": got}).Warn("local copy does not match its recorded digest (modified in place?); not reusing it")
			if err := os.Remove(dst); err != nil {
				return fileID{}, false, err
			}
			continue
		}
		return id, true, nil
	}
	return fileID{}, false, nil
}
