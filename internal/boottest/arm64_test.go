package boottest

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// TestBootArm64 builds the arm64 kernel (cross-compiled with aarch64-linux-gnu-gcc), a test
// initramfs with Debian's arm64 busybox-static around the real init scripts and the
// stand-in agent, and boots it under qemu-system-aarch64 (-machine virt -cpu cortex-a57,
// TCG) with a virtio-net-pci NIC: once by direct kernel boot (device tree, no firmware) and
// once through AAVMF (UEFI, the kernel's EFI stub, ACPI tables instead of a device tree). A cell passes when the lookup request
// arrives carrying the VM's MAC and the stand-in's report shows the virtio_net driver, IPv6
// and the expected boot mode.
func TestBootArm64(t *testing.T) {
	if testing.Short() {
		t.Skip("arm64 kernel build and QEMU boots skipped in -short mode")
	}
	ctx := context.Background()
	kernel, modules, err := kernelconfig.BuildKernel(ctx, kernelconfig.WithArch("arm64"), kernelconfig.WithBuildLog(t.Output()))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(kernel)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzipSize(kernel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("arm64 Image: %d bytes (%.2f MiB); gzip -9: %d bytes (%.2f MiB)",
		fi.Size(), float64(fi.Size())/(1<<20), gz, float64(gz)/(1<<20))
	checkModules(t, modules)

	busybox, err := FetchArm64Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := BuildTestInitramfs(ctx, TestInitramfsOptions{
		ModulesDir: modules, Busybox: busybox,
		Output: filepath.Join(t.TempDir(), "test-initramfs-arm64.cpio.gz"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(initrd); err == nil {
		t.Logf("arm64 test initramfs: %d bytes", fi.Size())
	}

	t.Run("cells", func(t *testing.T) {
		for i, fw := range []Firmware{FirmwareBIOS, FirmwareUEFI} {
			name := "direct"
			if fw == FirmwareUEFI {
				name = "uefi"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				bootArm64(t, name, kernel, initrd, fw, "52:54:00:a6:00:"+[]string{"01", "02"}[i])
			})
		}
	})
}

func bootArm64(t *testing.T, name, kernel, initrd string, fw Firmware, mac string) {
	srv, err := NewLookupServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	reqID := "req-arm64-" + string(fw)
	appendArgs := agentArgs("ttyAMA0", srv, reqID, mac)
	// TCG emulation of aarch64 on x86_64 is several times slower than x86_64 on x86_64;
	// AAVMF adds its own start-up.
	timeout := 240 * time.Second
	if fw == FirmwareUEFI {
		timeout += 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	vm, err := StartVM(ctx, VMConfig{
		Arch: "arm64", Kernel: kernel, Initrd: initrd, Append: strings.Join(appendArgs, " "),
		Firmware: fw, NICModel: "virtio-net-pci", MAC: mac, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n--- serial console ---\n%s", append(args, vm.ConsoleTail(12000))...)
	}
	vm.CancelOnExit(ctx, cancel)

	lookup, err := srv.WaitLookup(ctx, mac)
	if err != nil {
		fail("arm64/%s: %v (qemu: %v)", name, err, exitState(vm))
	}
	if lookup.RequestID != reqID {
		t.Errorf("lookup X-OpenStack-Request-ID = %q, want %q (ipa-global-request-id)", lookup.RequestID, reqID)
	}
	bootMode := "bios" // the stand-in's name for "no /sys/firmware/efi"
	if fw == FirmwareUEFI {
		bootMode = "uefi"
	}
	rep, err := srv.WaitReport(ctx, func(r Report) bool {
		f := r.Fields
		return r.Path == "/v1/continue" && f["boot_mode"] == bootMode && strings.Contains(f["macs"], mac) &&
			f["ipv6"] == "1" && strings.Contains(" "+f["modules"]+" ", " virtio_net ")
	})
	if err != nil {
		fail("arm64/%s: lookup arrived but the report never showed IPv6, boot_mode=%s, MAC %s and virtio_net: %v",
			name, bootMode, mac, err)
	}
	f := rep.Fields
	if fw == FirmwareUEFI && f["efivarfs"] != "1" {
		t.Errorf("efivarfs not mounted under UEFI: %q", f["efivarfs"])
	}
	if !strings.Contains(rep.Body, "param: ipa_api_url='"+srv.GuestURL()+"'") {
		t.Errorf("report lacks the parsed ipa-api-url:\n%s", rep.Body)
	}
	// Direct boot hands the kernel QEMU's device tree; AAVMF hands it ACPI tables only (the
	// EFI stub makes an empty DTB), as server firmware does: MCFG for PCI, SPCR for the console.
	out := vm.Output()
	wantLines := []string{"Machine model: linux,dummy-virt"}
	if fw == FirmwareUEFI {
		wantLines = []string{"EFI stub: Booting Linux Kernel", "EFI stub: Generating empty DTB", "ACPI: SPCR: console: pl011"}
	}
	for _, w := range wantLines {
		if !strings.Contains(out, w) {
			t.Errorf("arm64/%s: serial console lacks %q", name, w)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Linux version") || strings.Contains(l, "Booting Linux on physical CPU") {
			t.Logf("arm64/%s: %s", name, strings.TrimSpace(l))
		}
	}
	t.Logf("arm64/%s: lookup %.1f s after QEMU start (guest uptime at the matching report %s s); modules: %s",
		name, lookup.Time.Sub(vm.Started()).Seconds(), f["uptime"], f["modules"])
}

// gzipSize returns the size of path compressed with gzip -9 (what Image.gz would be).
func gzipSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n countWriter
	zw, err := gzip.NewWriterLevel(&n, gzip.BestCompression)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(zw, f); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func TestQEMUArgsArm64(t *testing.T) {
	dir := t.TempDir()
	args, err := QEMUArgs(VMConfig{
		Arch: "arm64", Kernel: "/Image", Initrd: "/i", Append: "console=ttyAMA0", Firmware: FirmwareUEFI,
		MAC: "52:54:00:00:00:02", WorkDir: dir, Accel: "tcg",
	})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-machine virt -accel tcg", "-cpu cortex-a57", "-nic user,model=virtio-net-pci,mac=52:54:00:00:00:02",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + AAVMFCode,
		"if=pflash,format=raw,unit=1,file=" + dir + "/AAVMF_VARS.fd",
		"-kernel /Image -initrd /i -append console=ttyAMA0",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "-vga") || strings.Contains(line, "OVMF") {
		t.Errorf("arm64 args carry x86-only options:\n%s", line)
	}
	if _, err := QEMUArgs(VMConfig{Arch: "riscv64", Kernel: "/k", WorkDir: dir}); err == nil || !strings.Contains(err.Error(), `unknown arch "riscv64"`) {
		t.Errorf("unknown arch: err = %v", err)
	}
}
