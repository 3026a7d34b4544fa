package kernelconfig

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requiredSymbols are what issue 4 asks of both kernels (y or m).
func requiredSymbols(arch string) []string {
	common := []string{
		"EFI", "EFI_STUB", "EFIVAR_FS", "DEVTMPFS", "BLK_DEV_INITRD", "RD_GZIP", "RD_XZ", "RD_ZSTD",
		"MODULES", "MODULE_COMPRESS_XZ", "SERIAL_8250_CONSOLE",
		"INET", "IPV6", "VLAN_8021Q", "PACKET",
		"IPMI_HANDLER", "IPMI_DEVICE_INTERFACE", "IPMI_SI",
		"DM_MULTIPATH", "MD_RAID0", "MD_RAID1", "MD_RAID456", "MD_RAID10",
		"EXT4_FS", "XFS_FS", "VFAT_FS",
		"E1000", "E1000E", "IGB", "IXGBE", "I40E", "ICE", "BNXT", "TIGON3", "MLX4_EN", "MLX5_CORE",
		"MLX5_CORE_EN", "VIRTIO_NET", "VMXNET3", "8139CP", "8139TOO",
		"SATA_AHCI", "BLK_DEV_NVME", "VIRTIO_BLK", "SCSI_VIRTIO", "MEGARAID_SAS",
		"SCSI_MPT3SAS", "FUSION_SAS", "FUSION_SPI", "SCSI_SMARTPQI", "SCSI_HPSA", "SCSI_AACRAID",
		"SCSI_SYM53C8XX_2", "BLK_DEV_SD",
	}
	switch arch {
	case "x86_64":
		return append(common, "KERNEL_XZ", "ATA_PIIX", "X86_64", "ACPI")
	case "arm64":
		return append(common, "SERIAL_AMBA_PL011_CONSOLE", "ACPI", "PCI_HOST_GENERIC")
	}
	return common
}

func TestDroppedNamesEachSymbol(t *testing.T) {
	want, err := ParseConfig(strings.NewReader("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"x\"\nCONFIG_E=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(strings.NewReader("CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_D=\"x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := Dropped(want, got)
	wantD := []string{"CONFIG_B: want m, got y", "CONFIG_C: want n, got y", "CONFIG_E: want y, got unset"}
	if strings.Join(d, "|") != strings.Join(wantD, "|") {
		t.Fatalf("Dropped = %q, want %q", d, wantD)
	}
}

// TestConfigSymbolsSurviveOlddefconfig runs `make olddefconfig` on each config against the
// real 6.12 source and fails naming every symbol whose value did not survive.
func TestConfigSymbolsSurviveOlddefconfig(t *testing.T) {
	for _, arch := range Arches() {
		t.Run(arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cfg, err := ConfigPath(arch)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ParseConfigFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 50 {
				t.Fatalf("%s has only %d symbols", cfg, len(want))
			}
			resolved, err := ResolveConfig(ctx, arch, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseConfigFile(resolved)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range Dropped(want, got) {
				t.Errorf("%s: olddefconfig dropped %s", filepath.Base(cfg), d)
			}
			have := map[string]string{}
			for _, s := range got {
				have[s.Name] = s.Value
			}
			for _, name := range requiredSymbols(arch) {
				if v := have["CONFIG_"+name]; v != "y" && v != "m" {
					t.Errorf("%s: required CONFIG_%s is %q after olddefconfig, want y or m", arch, name, v)
				}
			}
		})
	}
}
