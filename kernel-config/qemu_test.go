package kernelconfig

import (
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

	if _, err := QEMUArgs(VMConfig{Kernel: "/k", Disk: "floppy", WorkDir: dir}); err == nil || !strings.Contains(err.Error(), `unknown disk controller "floppy"`) {
		t.Errorf("unknown controller: err = %v", err)
	}
	if _, err := QEMUArgs(VMConfig{WorkDir: dir}); err == nil {
		t.Error("no kernel and no netboot: want an error")
	}
}
