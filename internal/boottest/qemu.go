// Package boottest boots the project's kernel and initramfs the way a PXE host would, for
// the tests and for cmd/ipa-boot-check: StartVM runs QEMU (x86_64 pc or arm64 virt; SeaBIOS,
// OVMF or AAVMF; any NIC model and disk controller; optional netboot), LookupServer plays the
// Ironic API endpoint the agent's lookup request reaches, BuildTestInitramfs assembles a test
// initramfs around the project's real init scripts and the stand-in agent (testdata/). The
// boot tests (TestBootMatrix, TestBootArm64) and the tests of the init's shell code live here;
// the kernel itself comes from internal/kernelconfig.
package boottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
)

// Firmware selects the machine firmware of a VM.
type Firmware string

// Firmware choices.
const (
	// FirmwareBIOS is QEMU's default SeaBIOS; -kernel/-initrd use the bzImage boot protocol.
	FirmwareBIOS Firmware = "bios"
	// FirmwareUEFI is OVMF (pflash); -kernel is then started through the kernel's EFI stub
	// by OVMF, so the kernel sees /sys/firmware/efi.
	FirmwareUEFI Firmware = "uefi"
)

// OVMF firmware files from Debian's ovmf package (2 MB variant: code + vars template).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// AAVMF firmware files (UEFI for arm64 QEMU virt) from Debian's qemu-efi-aarch64 package.
const (
	AAVMFCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	AAVMFVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// Netboot makes the VM boot from the network (-boot n) with QEMU's built-in TFTP server
// serving TFTPDir and announcing Bootfile by DHCP (iPXE ROMs from Debian's ipxe-qemu).
// Without TFTPDir, Bootfile may be a URL that the NIC's iPXE ROM chains to directly, e.g.
// Ironic's http://10.0.2.2:8080/boot.ipxe.
type Netboot struct {
	TFTPDir  string
	Bootfile string
}

// VMConfig describes one QEMU boot (x86_64 pc by default, arm64 virt with Arch "arm64").
type VMConfig struct {
	// Arch is "x86_64" (default: -machine pc, qemu-system-x86_64) or "arm64" (-machine virt
	// -cpu cortex-a57, qemu-system-aarch64; FirmwareBIOS then means direct kernel boot
	// without firmware, FirmwareUEFI AAVMF).
	Arch string
	// Kernel, Initrd and Append are passed as -kernel, -initrd, -append (Kernel empty: no
	// direct kernel boot, e.g. with Netboot).
	Kernel, Initrd, Append string
	// Firmware is FirmwareBIOS (default) or FirmwareUEFI.
	Firmware Firmware
	// NICModel is the -nic model (virtio-net-pci by default; e1000, e1000e, vmxnet3,
	// rtl8139, ...). MAC is its address (QEMU's default when empty).
	NICModel, MAC string
	// NetOptions are added to the user-mode -nic option, e.g.
	// "hostfwd=tcp:10.0.2.2:9999-:9999" so that a server beside QEMU reaches the guest.
	NetOptions []string
	// Disk is a disk controller name understood by DiskArgs ("" for no disk); DiskSizeMiB
	// defaults to 64. DiskImage, if set, is the raw disk image to attach, kept across boots
	// (created sparse with DiskSizeMiB when missing); otherwise WorkDir/disk0.raw is made anew.
	Disk        string
	DiskSizeMiB int
	DiskImage   string
	// Netboot, if set, boots from the network instead of Kernel.
	Netboot *Netboot
	// MemoryMiB defaults to 512, CPUs to 1.
	MemoryMiB, CPUs int
	// Accel is the -accel value; default $IPA_OCI_QEMU_ACCEL or "tcg".
	Accel string
	// ExtraArgs are appended to the QEMU command line.
	ExtraArgs []string
	// WorkDir is a scratch directory for the OVMF variable store and the disk image. Required.
	WorkDir string
	// Serial, if set, receives the serial console output as it comes.
	Serial io.Writer
	// QEMU is the binary; default qemu-system-x86_64 (qemu-system-aarch64 for arm64).
	QEMU string
}

// DiskArgs returns the QEMU arguments attaching drive id "d0" to controller, the block
// device name the guest kernel gives the disk, and the kernel module that drives the
// controller. Controllers: ahci (ich9-ahci + ide-hd), nvme, virtio-blk (virtio-blk-pci),
// virtio-scsi (virtio-scsi-pci + scsi-hd), megasas, lsi53c895a, mptsas1068 (each + scsi-hd).
func DiskArgs(controller string) (args []string, blockDev, module string, err error) {
	scsi := func(dev, mod string) ([]string, string, string, error) {
		return []string{"-device", dev + ",id=scsi0", "-device", "scsi-hd,drive=d0,bus=scsi0.0"}, "sda", mod, nil
	}
	switch controller {
	case "ahci":
		return []string{"-device", "ich9-ahci,id=ahci", "-device", "ide-hd,drive=d0,bus=ahci.0"}, "sda", "ahci", nil
	case "nvme":
		return []string{"-device", "nvme,drive=d0,serial=ipaoci0001"}, "nvme0n1", "nvme", nil
	case "virtio-blk":
		return []string{"-device", "virtio-blk-pci,drive=d0"}, "vda", "virtio_blk", nil
	case "virtio-scsi":
		return scsi("virtio-scsi-pci", "virtio_scsi")
	case "megasas":
		return scsi("megasas", "megaraid_sas")
	case "lsi53c895a":
		return scsi("lsi53c895a", "sym53c8xx")
	case "mptsas1068":
		return scsi("mptsas1068", "mptsas")
	}
	return nil, "", "", fmt.Errorf("unknown disk controller %q (want ahci, nvme, virtio-blk, virtio-scsi, megasas, lsi53c895a or mptsas1068)", controller)
}

// NICModules returns the kernel modules that may drive a QEMU NIC model (any one of them
// loaded is enough), or nil for an unknown model.
func NICModules(model string) []string {
	switch model {
	case "", "virtio-net-pci", "virtio":
		return []string{"virtio_net"}
	case "e1000", "e1000e", "vmxnet3", "igb":
		return []string{model}
	case "rtl8139":
		return []string{"8139cp", "8139too"}
	}
	return nil
}

// QEMUArgs returns the command line (without the binary) for cfg. It creates the disk image
// and the OVMF variable store copy in cfg.WorkDir.
func QEMUArgs(cfg VMConfig) ([]string, error) {
	if cfg.WorkDir == "" {
		return nil, errors.New("qemu: VMConfig.WorkDir is required")
	}
	if cfg.Kernel == "" && cfg.Netboot == nil {
		return nil, errors.New("qemu: set Kernel or Netboot")
	}
	mem, cpus := cfg.MemoryMiB, cfg.CPUs
	if mem == 0 {
		mem = 512
	}
	if cpus == 0 {
		cpus = 1
	}
	accel := cfg.Accel
	if accel == "" {
		accel = os.Getenv("IPA_OCI_QEMU_ACCEL")
	}
	if accel == "" {
		accel = "tcg"
	}
	arm64 := false
	switch cfg.Arch {
	case "", "x86_64":
	case "arm64", "aarch64":
		arm64 = true
	default:
		return nil, fmt.Errorf("qemu: unknown arch %q (want x86_64 or arm64)", cfg.Arch)
	}
	machine, vga := "pc", []string{"-vga", "none"}
	if arm64 {
		machine, vga = "virt", nil
	}
	args := []string{"-machine", machine, "-accel", accel, "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-display", "none"}
	args = append(args, vga...)
	args = append(args, "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nodefaults")
	switch {
	case strings.HasPrefix(accel, "kvm"):
		args = append(args, "-cpu", "host")
	case arm64:
		args = append(args, "-cpu", "cortex-a57")
	}
	code, varsTemplate, fwPkg := OVMFCode, OVMFVars, "ovmf"
	if arm64 {
		code, varsTemplate, fwPkg = AAVMFCode, AAVMFVars, "qemu-efi-aarch64"
	}
	switch cfg.Firmware {
	case "", FirmwareBIOS:
	case FirmwareUEFI:
		vars := filepath.Join(cfg.WorkDir, filepath.Base(varsTemplate))
		if err := fsutil.CopyFileAtomic(varsTemplate, vars); err != nil {
			return nil, fmt.Errorf("qemu: UEFI variable store (apt-get install %s): %w", fwPkg, err)
		}
		if _, err := os.Stat(code); err != nil {
			return nil, fmt.Errorf("qemu: UEFI firmware (apt-get install %s): %w", fwPkg, err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		return nil, fmt.Errorf("qemu: unknown firmware %q (want bios or uefi)", cfg.Firmware)
	}
	model := cfg.NICModel
	if model == "" {
		model = "virtio-net-pci"
	}
	nic := "user,model=" + model
	if cfg.MAC != "" {
		nic += ",mac=" + cfg.MAC
	}
	if nb := cfg.Netboot; nb != nil {
		if nb.TFTPDir != "" {
			nic += ",tftp=" + nb.TFTPDir
		}
		nic += ",bootfile=" + nb.Bootfile
		args = append(args, "-boot", "n")
	}
	for _, o := range cfg.NetOptions {
		nic += "," + o
	}
	args = append(args, "-nic", nic)
	if cfg.Disk != "" {
		dargs, _, _, err := DiskArgs(cfg.Disk)
		if err != nil {
			return nil, err
		}
		size := cfg.DiskSizeMiB
		if size == 0 {
			size = 64
		}
		img := filepath.Join(cfg.WorkDir, "disk0.raw")
		if cfg.DiskImage != "" {
			img = cfg.DiskImage
		}
		if _, err := os.Stat(img); cfg.DiskImage == "" || errors.Is(err, os.ErrNotExist) {
			if err := makeSparse(img, int64(size)<<20); err != nil {
				return nil, fmt.Errorf("qemu: disk image: %w", err)
			}
		}
		args = append(args, "-drive", "if=none,id=d0,format=raw,file="+img)
		args = append(args, dargs...)
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			args = append(args, "-append", cfg.Append)
		}
	}
	return append(args, cfg.ExtraArgs...), nil
}

// VM is a running QEMU process.
type VM struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	err     error

	mu     sync.Mutex
	serial bytes.Buffer
}

// StartVM starts QEMU for cfg. The process is killed when ctx ends; call Stop in any case.
func StartVM(ctx context.Context, cfg VMConfig) (*VM, error) {
	args, err := QEMUArgs(cfg)
	if err != nil {
		return nil, err
	}
	bin, pkg := cfg.QEMU, "qemu-system-x86"
	if cfg.Arch == "arm64" || cfg.Arch == "aarch64" {
		pkg = "qemu-system-arm"
		if bin == "" {
			bin = "qemu-system-aarch64"
		}
	}
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("qemu: %s not found (apt-get install %s): %w", bin, pkg, err)
	}
	vm := &VM{done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	out := io.Writer(&lockedWriter{vm: vm})
	if cfg.Serial != nil {
		out = io.MultiWriter(out, cfg.Serial)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Stdin = nil
	vm.cmd = cmd
	vm.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: start %s: %w", bin, err)
	}
	go func() {
		vm.err = cmd.Wait()
		close(vm.done)
	}()
	return vm, nil
}

type lockedWriter struct{ vm *VM }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.vm.mu.Lock()
	defer w.vm.mu.Unlock()
	return w.vm.serial.Write(p)
}

// Started returns when QEMU was started.
func (vm *VM) Started() time.Time { return vm.started }

// Output returns the serial console (and QEMU's own messages) so far.
func (vm *VM) Output() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.serial.String()
}

// WaitOutput waits until the serial console output contains s, QEMU exits, or ctx ends.
func (vm *VM) WaitOutput(ctx context.Context, s string) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(vm.Output(), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serial console never showed %q: %w", s, ctx.Err())
		case <-vm.done:
			if strings.Contains(vm.Output(), s) {
				return nil
			}
			return fmt.Errorf("QEMU exited (%v) before the serial console showed %q", vm.err, s)
		case <-tick.C:
		}
	}
}

// ConsoleTail returns the last n bytes of the serial console, for failure messages.
func (vm *VM) ConsoleTail(n int) string {
	out := vm.Output()
	if len(out) > n {
		out = "...\n" + out[len(out)-n:]
	}
	return out
}

// CancelOnExit calls cancel when QEMU exits before ctx ends (a panic, bad arguments), so
// that whoever waits on ctx stops at once instead of running into its timeout.
func (vm *VM) CancelOnExit(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		select {
		case <-vm.done:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Err returns QEMU's exit error once Done is closed.
func (vm *VM) Err() error {
	<-vm.done
	return vm.err
}

// Stop kills QEMU (if still running) and waits for it to exit.
func (vm *VM) Stop() {
	select {
	case <-vm.done:
		return
	default:
	}
	_ = vm.cmd.Process.Kill()
	<-vm.done
}

func makeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
