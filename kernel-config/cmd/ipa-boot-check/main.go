// Command ipa-boot-check boots an IPA kernel + initramfs under QEMU with user networking,
// serves the Ironic lookup endpoint on the host and exits 0 as soon as the agent's lookup
// request arrives carrying the VM's MAC, 1 when it does not within the timeout (or QEMU
// exits), 2 on bad usage. scripts/boot-test.sh is the front end.
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

	kernelconfig "github.com/ipa-oci/ipa-oci/kernel-config"
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
	)
	flag.Parse()
	if *kernel == "" || *initrd == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ipa-boot-check -kernel KERNEL -initrd INITRAMFS [-uefi] [-nic MODEL] [-disk CTRL] [-timeout 10m]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	srv, err := kernelconfig.NewLookupServer()
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
	fw := kernelconfig.FirmwareBIOS
	console := "console=ttyS0,115200"
	if *uefi {
		fw = kernelconfig.FirmwareUEFI
	}
	args := []string{console, "panic=-1", "ipa-api-url=" + srv.GuestURL(),
		"BOOTIF=01-" + strings.ReplaceAll(strings.ToLower(*mac), ":", "-")}
	if *extra != "" {
		args = append(args, *extra)
	}
	absK, _ := filepath.Abs(*kernel)
	absI, _ := filepath.Abs(*initrd)
	vm, err := kernelconfig.StartVM(ctx, kernelconfig.VMConfig{
		Kernel: absK, Initrd: absI, Append: strings.Join(args, " "),
		Firmware: fw, NICModel: *nic, MAC: *mac, Disk: *disk,
		MemoryMiB: *mem, CPUs: *cpus, WorkDir: work, Serial: io.MultiWriter(out...),
	})
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
