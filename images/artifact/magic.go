package artifact

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// CheckKernel reports whether path looks like a Linux kernel image: an x86 bzImage ("HdrS" at
// 0x202), an arm64 Image ("ARM\x64" at 0x38) or an EFI zboot image ("MZ" + "zimg").
func CheckKernel(path string) error {
	head, err := readHead(path, 0x240)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", path, err)
	}
	switch {
	case len(head) >= 0x206 && bytes.Equal(head[0x202:0x206], []byte("HdrS")):
		return nil
	case len(head) >= 0x3c && bytes.Equal(head[0x38:0x3c], []byte("ARM\x64")):
		return nil
	case len(head) >= 8 && bytes.Equal(head[0:2], []byte("MZ")) && bytes.Equal(head[4:8], []byte("zimg")):
		return nil
	}
	return fmt.Errorf("kernel %s: not a Linux bzImage or arm64 Image (no kernel header magic); pass the kernel build's bzImage/Image", path)
}

// CheckInitramfs reports whether path looks like an initramfs: a newc/crc/odc cpio archive, or
// one compressed with gzip, xz or zstd.
func CheckInitramfs(path string) error {
	head, err := readHead(path, 6)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", path, err)
	}
	for _, m := range [][]byte{
		[]byte("070701"), []byte("070702"), []byte("070707"), // cpio newc, crc, odc
		{0x1f, 0x8b},                     // gzip
		{0xfd, '7', 'z', 'X', 'Z', 0x00}, // xz
		{0x28, 0xb5, 0x2f, 0xfd},         // zstd
	} {
		if bytes.HasPrefix(head, m) {
			return nil
		}
	}
	return fmt.Errorf("initramfs %s: not a cpio archive (plain, gzip, xz or zstd); pass Buildroot's rootfs.cpio.xz", path)
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:got], nil
}
