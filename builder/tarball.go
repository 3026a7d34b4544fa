package builder

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"
)

// tarDir writes dir of fsys as a deterministic tar.gz: sorted names, mtimes = epoch, owner
// 0:0, modes 0644/0755, no gzip name or time. Symlinks are stored as symlinks, never followed.
func tarDir(fsys fs.FS, dir, dst string, epoch int64) error {
	type entry struct {
		name string
		d    fs.DirEntry
	}
	var entries []entry
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries = append(entries, entry{p, d})
		return nil
	})
	if err != nil {
		return fmt.Errorf("legal-info: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	mtime := time.Unix(epoch, 0)
	base := path.Dir(dir)
	for _, e := range entries {
		fi, err := e.d.Info()
		if err != nil {
			return err
		}
		rel := e.name
		if base != "." {
			rel = e.name[len(base)+1:]
		}
		hdr := &tar.Header{Name: rel, ModTime: mtime, Format: tar.FormatPAX, Mode: 0o644}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, hdr.Name+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := fs.ReadLink(fsys, e.name)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, t, 0o777
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
			if fi.Mode()&0o111 != 0 {
				hdr.Mode = 0o755
			}
		default:
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			in, err := fsys.Open(e.name)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, in, hdr.Size)
			in.Close()
			if err != nil {
				return fmt.Errorf("legal-info %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
