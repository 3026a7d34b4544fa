package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMagicChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	arm := make([]byte, 0x100)
	copy(arm[0x38:], "ARM\x64")
	for name, b := range map[string][]byte{"bzImage": bz, "Image": arm, "zboot": []byte("MZ\x00\x00zimg....")} {
		if err := CheckKernel(write(name, b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{"elf": []byte("\x7fELF\x02\x01\x01"), "empty": {}, "short": []byte("HdrS")} {
		err := CheckKernel(write(name, b))
		if err == nil || !strings.Contains(err.Error(), "not a Linux bzImage") {
			t.Errorf("%s accepted as kernel: %v", name, err)
		}
	}
	if err := CheckKernel(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as kernel: %v", err)
	}
	for name, b := range map[string][]byte{"newc": []byte("070701000"), "gz": {0x1f, 0x8b, 8}, "xz": []byte("\xfd7zXZ\x00\x00"), "zst": {0x28, 0xb5, 0x2f, 0xfd, 0}} {
		if err := CheckInitramfs(write(name, b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{"tar": []byte("ustar\x00"), "bz2": []byte("BZh91AY"), "text": []byte("hello")} {
		err := CheckInitramfs(write(name, b))
		if err == nil || !strings.Contains(err.Error(), "not a cpio archive") {
			t.Errorf("%s accepted as initramfs: %v", name, err)
		}
	}
}
