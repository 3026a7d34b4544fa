package boottest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQEMUArgs(t *testing.T) {
	dir := t.TempDir()
	args, err := QEMUArgs(VMConfig{
		Kernel: "/k", Initrd: "/i", Append: "console=ttyS0", Firmware: FirmwareUEFI,
		NICModel: "e1000e", MAC: "52:54:00:00:00:01", Disk: "megasas", WorkDir: dir, Accel: "tcg",
	})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-accel tcg", "-nic user,model=e1000e,mac=52:54:00:00:00:01",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"if=pflash,format=raw,unit=1,file=" + dir + "/OVMF_VARS.fd",
		"-device megasas,id=scsi0 -device scsi-hd,drive=d0,bus=scsi0.0",
		"-kernel /k -initrd /i -append console=ttyS0",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}

	args, err = QEMUArgs(VMConfig{Netboot: &Netboot{TFTPDir: "/srv/tftp", Bootfile: "boot.ipxe"}, WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	line = strings.Join(args, " ")
	if !strings.Contains(line, "-boot n") || !strings.Contains(line, "tftp=/srv/tftp,bootfile=boot.ipxe") || strings.Contains(line, "-kernel") {
		t.Errorf("netboot args wrong:\n%s", line)
	}

	disk := filepath.Join(dir, "kept.raw")
	if err := os.WriteFile(disk, []byte("marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	args, err = QEMUArgs(VMConfig{
		Netboot: &Netboot{Bootfile: "http://10.0.2.2:8080/boot.ipxe"}, NetOptions: []string{"hostfwd=tcp:10.0.2.2:9999-:9999"},
		Disk: "virtio-blk", DiskImage: disk, DiskSizeMiB: 5120, WorkDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	line = strings.Join(args, " ")
	if !strings.Contains(line, "-nic user,model=virtio-net-pci,bootfile=http://10.0.2.2:8080/boot.ipxe,hostfwd=tcp:10.0.2.2:9999-:9999") ||
		strings.Contains(line, "tftp=") || !strings.Contains(line, "file="+disk) {
		t.Errorf("URL netboot / hostfwd / kept disk args wrong:\n%s", line)
	}
	if b, _ := os.ReadFile(disk); string(b) != "marker" {
		t.Errorf("an existing DiskImage was overwritten: %q", b)
	}

	if _, err := QEMUArgs(VMConfig{Kernel: "/k", Disk: "floppy", WorkDir: dir}); err == nil || !strings.Contains(err.Error(), `unknown disk controller "floppy"`) {
		t.Errorf("unknown controller: err = %v", err)
	}
	if _, err := QEMUArgs(VMConfig{WorkDir: dir}); err == nil {
		t.Error("no kernel and no netboot: want an error")
	}
}
