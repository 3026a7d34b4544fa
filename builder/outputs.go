package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/sirupsen/logrus"
)

// collect copies the artifacts out of Buildroot's images/, hashes them and writes build-info.
// Everything under O= was written by the build phase, so it is read through an os.Root: a
// symlink pointing out of O= (at a host secret, say) is refused, never followed.
func (b *build) collect() error {
	o := b.o
	root, err := os.OpenRoot(b.brOut())
	if err != nil {
		return fmt.Errorf("open build output: %w", err)
	}
	defer root.Close()
	kernel, err := firstRegular(root, "images/bzImage", "images/Image", "images/vmlinuz", "images/zImage")
	if err != nil {
		return err
	}
	initrd, err := firstRegular(root, "images/rootfs.cpio.xz", "images/rootfs.cpio.zst", "images/rootfs.cpio.gz", "images/rootfs.cpio")
	if err != nil {
		return err
	}
	if kernel == "" || initrd == "" {
		return fmt.Errorf("build finished but %s lacks a kernel (bzImage/Image) or rootfs.cpio.*: check the defconfig enables BR2_LINUX_KERNEL and BR2_TARGET_ROOTFS_CPIO", filepath.Join(b.brOut(), "images"))
	}
	for _, a := range []struct{ src, name string }{{kernel, KernelName}, {initrd, InitramfsName}} {
		src, err := openRegular(root, a.src)
		if err != nil {
			return err
		}
		err = b.addOutput(src, a.name)
		src.Close()
		if err != nil {
			return err
		}
	}
	if o.LegalInfo {
		tmp := filepath.Join(o.Output, "."+LegalInfoName+".tmp")
		defer os.Remove(tmp)
		if err := tarDir(root.FS(), "legal-info", tmp, b.info.Inputs.SourceDateEpoch); err != nil {
			return err
		}
		src, err := os.Open(tmp)
		if err != nil {
			return err
		}
		err = b.addOutput(src, LegalInfoName)
		src.Close()
		if err != nil {
			return err
		}
		b.res.LegalInfo = filepath.Join(o.Output, LegalInfoName)
	}
	b.res.Kernel = filepath.Join(o.Output, KernelName)
	b.res.Initramfs = filepath.Join(o.Output, InitramfsName)
	si, err := readRegular(root, ShowInfoName)
	if err != nil {
		return fmt.Errorf("read Buildroot show-info: %w", err)
	}
	if !json.Valid(si) {
		return fmt.Errorf("Buildroot's make show-info wrote invalid JSON to %s", filepath.Join(b.brOut(), ShowInfoName))
	}
	b.info.ShowInfo = json.RawMessage(strings.TrimSpace(string(si)))
	b.info.SchemaVersion = BuildInfoSchemaVersion
	out, err := json.MarshalIndent(b.info, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(o.Output, BuildInfoName)
	if err := fsutil.WriteFileAtomic(p, append(out, '\n')); err != nil {
		return err
	}
	b.chownArtifact(p)
	b.chownArtifact(b.res.BuildLog)
	b.res.BuildInfoPath = p
	b.res.Info = &b.info
	for _, f := range b.info.Outputs {
		b.log.WithFields(logrus.Fields{"file": f.Name, "digest": f.SHA256, "size": f.Size}).Info("artifact")
	}
	return nil
}

// addOutput publishes src as OUTPUT/name and records its digest and size.
func (b *build) addOutput(src io.Reader, name string) error {
	dst := filepath.Join(b.o.Output, name)
	if err := fsutil.WriteAtomic(dst, func(w io.Writer) error { _, err := io.Copy(w, src); return err }); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	sum, err := fsutil.SHA256File(dst)
	if err != nil {
		return err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return err
	}
	b.info.Outputs = append(b.info.Outputs, OutputFile{Name: name, SHA256: "sha256:" + sum, Size: fi.Size()})
	b.chownArtifact(dst)
	return nil
}

func (b *build) chownArtifact(p string) {
	if b.chownOut {
		os.Lchown(p, b.uid, b.gid)
	}
}

// firstRegular returns the first of names that is a regular file inside root, "" if none
// exists. A name that exists but resolves outside root (or is not a regular file) is an error.
func firstRegular(root *os.Root, names ...string) (string, error) {
	for _, n := range names {
		fi, err := root.Stat(n)
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := root.Lstat(n); lerr != nil {
				continue // not there at all
			}
		}
		if err != nil {
			return "", fmt.Errorf("build output %s: %w (a symlink out of the output directory is refused)", filepath.Join(root.Name(), n), err)
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("build output %s is a %s, not a regular file", filepath.Join(root.Name(), n), fi.Mode().Type())
		}
		return n, nil
	}
	return "", nil
}

// openRegular opens name inside root and checks it is a regular file.
func openRegular(root *os.Root, name string) (*os.File, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("build output %s: %w", filepath.Join(root.Name(), name), err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("build output %s: %w", filepath.Join(root.Name(), name), err)
	}
	return f, nil
}

// readRegular reads a regular file inside root.
func readRegular(root *os.Root, name string) ([]byte, error) {
	f, err := openRegular(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
