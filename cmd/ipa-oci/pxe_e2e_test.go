package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/boottest"
	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// TestE2EPXENetboot is the whole PXE path: the project's kernel (built from kernel-config/,
// cached by config hash) and a test initramfs (busybox, the project's own init scripts, and the
// STAND-IN agent that performs IPA's lookup) are pushed to a real registry with `ipa-oci push`,
// placed on a TFTP directory with `ipa-oci pull --ipxe`, and QEMU netboots them through iPXE
// over TFTP (-boot n). Pass = the lookup request arrives carrying the VM's MAC.
func TestE2EPXENetboot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a kernel (cached) and boots QEMU")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	kernel, modules, err := kernelconfig.BuildKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := boottest.BuildTestInitramfs(ctx, boottest.TestInitramfsOptions{
		ModulesDir: modules, Output: filepath.Join(t.TempDir(), "initramfs.cpio.gz")})
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	ref := reg.Host + "/ironic/ipa:pxe"
	mustOK(t, "push", ref, "--kernel", kernel, "--initramfs", initrd, "--ipa-version", "pxe-test")

	for _, fw := range []boottest.Firmware{boottest.FirmwareBIOS, boottest.FirmwareUEFI} {
		t.Run(string(fw), func(t *testing.T) {
			srv, err := boottest.NewLookupServer()
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			mac := "52:54:00:e2:e0:01"
			if fw == boottest.FirmwareUEFI {
				mac = "52:54:00:e2:e0:02"
			}
			tftp := t.TempDir()
			out := mustOK(t, "pull", ref, "--dest", tftp, "--ipxe",
				"--kernel-arg", "console=ttyS0,115200", "--kernel-arg", "panic=-1",
				"--kernel-arg", "ipa-api-url="+srv.GuestURL())
			if !strings.HasPrefix(out, "updated amd64 sha256:") {
				t.Fatalf("pull printed %q", out)
			}
			script, err := os.ReadFile(filepath.Join(tftp, "boot.ipxe"))
			if err != nil || !strings.Contains(string(script), "ipa-api-url="+srv.GuestURL()) {
				t.Fatalf("boot.ipxe = %q, %v", script, err)
			}
			vm, err := boottest.StartVM(ctx, boottest.VMConfig{
				Netboot:  &boottest.Netboot{TFTPDir: tftp, Bootfile: "boot.ipxe"},
				Firmware: fw, MAC: mac, WorkDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Stop()
			bootCtx, bootCancel := context.WithTimeout(ctx, 240*time.Second)
			defer bootCancel()
			vm.CancelOnExit(bootCtx, bootCancel)
			lookup, err := srv.WaitLookup(bootCtx, mac)
			if err != nil {
				t.Fatalf("netboot (%s): no lookup with MAC %s: %v\n--- serial console ---\n%s", fw, mac, err, vm.ConsoleTail(12000))
			}
			t.Logf("%s netboot: lookup %.1f s after QEMU start", fw, lookup.Time.Sub(vm.Started()).Seconds())
		})
	}
}
