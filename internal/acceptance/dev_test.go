package acceptance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

func TestDevIronic(t *testing.T) {
	if os.Getenv("DEV_IRONIC") == "" {
		t.Skip()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var s stack
	dir := t.TempDir()
	s.art.Chroot = os.Getenv("DEV_IRONIC")
	s.art.IPAOCI = "/tmp/dev-ipa-oci"
	k := make([]byte, 64<<10)
	copy(k[0x202:], "HdrS")
	s.art.Kernel = filepath.Join(dir, "k")
	os.WriteFile(s.art.Kernel, k, 0o644)
	s.art.Initramfs = filepath.Join(dir, "i")
	os.WriteFile(s.art.Initramfs, append([]byte("070701"), make([]byte, 4096)...), 0o644)
	if out, err := exec.Command("go", "build", "-o", s.art.IPAOCI, "../../cmd/ipa-oci").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	s.ca = testenv.NewCA(t, GuestHost)
	s.reg = testenv.StartRegistryTLS(t, s.ca, fmt.Sprintf("%s:%d", GuestHost, RegistryPort))
	s.plain = testenv.StartRegistry(t)
	settings := pushAndInspect(t, &s)
	ir := startIronic(ctx, t, &s, IronicConfig{FastTrack: true})
	negativeCells(ctx, t, &s, ir, settings)
}
