// Command ipa-boot-check boots an IPA kernel + initramfs under QEMU with user networking
// (directly with -kernel/-initrd, or netbooted through iPXE over TFTP with -tftp DIR),
// serves the Ironic lookup endpoint on the host and exits 0 as soon as the agent's lookup
// request arrives carrying the VM's MAC, 1 when it does not within the timeout (or QEMU
// exits), 2 on bad usage. scripts/boot-test.sh and scripts/demo.sh are the front ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/boottest"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		kernel  = flag.String("kernel", "", "kernel image (bzImage / ironic-python-agent.kernel)")
		initrd  = flag.String("initrd", "", "initramfs (ironic-python-agent.initramfs)")
		uefi    = flag.Bool("uefi", false, "boot with OVMF (UEFI) instead of SeaBIOS")
		nic     = flag.String("nic", "virtio-net-pci", "QEMU NIC model")
		mac     = flag.String("mac", "52:54:00:12:34:56", "MAC address of the VM's NIC")
		disk    = flag.String("disk", "", "disk controller to attach (ahci, nvme, virtio-blk, virtio-scsi, megasas, lsi53c895a, mptsas1068)")
		mem     = flag.Int("memory", 2048, "VM memory in MiB (a real IPA ramdisk needs well over 1 GiB)")
		cpus    = flag.Int("cpus", 2, "VM CPUs")
		timeout = flag.Duration("timeout", 10*time.Minute, "how long to wait for the lookup")
		extra   = flag.String("append", "", "extra kernel arguments")
		serial  = flag.String("serial-log", "", "also write the serial console to this file (default: stderr only)")
		quiet   = flag.Bool("quiet", false, "do not copy the serial console to stderr")
		tftp    = flag.String("tftp", "", "netboot: serve this directory over QEMU's TFTP and boot from the network (-boot n)")
		boot    = flag.String("bootfile", "boot.ipxe", "netboot: the file DHCP announces (an iPXE script written by ipa-oci pull --ipxe)")
		listen  = flag.String("listen", "127.0.0.1:0", "address of the lookup endpoint (the guest reaches host port P as 10.0.2.2:P)")
	)
	flag.Parse()
	if (*tftp == "" && (*kernel == "" || *initrd == "")) || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ipa-boot-check {-kernel KERNEL -initrd INITRAMFS | -tftp DIR [-bootfile boot.ipxe]} [-uefi] [-nic MODEL] [-disk CTRL] [-listen 127.0.0.1:PORT] [-timeout 10m]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	srv, err := boottest.NewLookupServerAt(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipa-boot-check:", err)
		return 1
	}
	defer srv.Close()
	work, err := os.MkdirTemp("", "ipa-boot-check.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipa-boot-check:", err)
		return 1
	}
	defer os.RemoveAll(work)

	var out []io.Writer
	if !*quiet {
		out = append(out, os.Stderr)
	}
	if *serial != "" {
		f, err := os.Create(*serial)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ipa-boot-check:", err)
			return 1
		}
		defer f.Close()
		out = append(out, f)
	}
	fw := boottest.FirmwareBIOS
	console := "console=ttyS0,115200"
	if *uefi {
		fw = boottest.FirmwareUEFI
	}
	args := []string{console, "panic=-1", "ipa-api-url=" + srv.GuestURL(),
		"BOOTIF=01-" + strings.ReplaceAll(strings.ToLower(*mac), ":", "-")}
	if *extra != "" {
		args = append(args, *extra)
	}
	cfg := boottest.VMConfig{
		Firmware: fw, NICModel: *nic, MAC: *mac, Disk: *disk,
		MemoryMiB: *mem, CPUs: *cpus, WorkDir: work, Serial: io.MultiWriter(out...),
	}
	if *tftp != "" {
		// The kernel command line comes from the iPXE script (ipa-oci pull --kernel-arg).
		dir, _ := filepath.Abs(*tftp)
		cfg.Netboot = &boottest.Netboot{TFTPDir: dir, Bootfile: *boot}
	} else {
		cfg.Kernel, _ = filepath.Abs(*kernel)
		cfg.Initrd, _ = filepath.Abs(*initrd)
		cfg.Append = strings.Join(args, " ")
	}
	vm, err := boottest.StartVM(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipa-boot-check:", err)
		return 1
	}
	defer vm.Stop()
	go func() {
		select {
		case <-vm.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	l, err := srv.WaitLookup(ctx, *mac)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nipa-boot-check: FAIL: %v\n", err)
		return 1
	}
	fmt.Printf("ipa-boot-check: PASS: lookup for %s arrived %.1f s after QEMU start (firmware %s, NIC %s)\n",
		strings.Join(l.Addresses, ","), l.Time.Sub(vm.Started()).Seconds(), fw, *nic)
	return 0
}
