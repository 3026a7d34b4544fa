package bootdir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
)

// ensureIPXE (re)writes the iPXE script of an up-to-date version (in vdir) when it is missing
// or differs from what rec and the arguments give, returning the extra top-level names to link.
func (d *destDir) ensureIPXE(po PullOptions, vdir string, rec *Record) ([]string, error) {
	if !po.IPXE {
		return nil, nil
	}
	name := ipxeName(rec.Arch)
	path := filepath.Join(vdir, name)
	want := IPXEScript(rec, po.KernelArgs)
	if have, err := os.ReadFile(path); err != nil || string(have) != string(want) {
		if err := fsutil.WriteFileAtomic(path, want); err != nil {
			return nil, err
		}
	}
	return []string{name}, nil
}

func ipxeName(arch string) string {
	if arch == artifact.DefaultArch {
		return "boot.ipxe"
	}
	return "boot_" + arches.Uname(arch) + ".ipxe"
}

// IPXEScript returns an iPXE script that boots rec's kernel and initramfs by relative path, so
// it works served over TFTP or HTTP from the same directory. Control characters in any value
// (Pull refuses them) are written as '?', so that no value can add a line to the script.
func IPXEScript(rec *Record, kernelArgs []string) []byte {
	var kernel, initrd string
	for _, f := range rec.Files {
		switch artifact.Component(f.Component) {
		case artifact.Kernel:
			kernel = f.Name
		case artifact.Initramfs:
			initrd = f.Name
		}
	}
	args := append([]string{"initrd=" + initrd}, kernelArgs...)
	var b strings.Builder
	fmt.Fprintf(&b, "#!ipxe\n# Written by ipa-oci pull: %s (index %s, IPA %s)\n", oneLine(rec.Ref), oneLine(rec.IndexDigest.String()), oneLine(rec.IPAVersion))
	fmt.Fprintf(&b, "kernel %s %s\n", oneLine(kernel), oneLine(strings.Join(args, " ")))
	fmt.Fprintf(&b, "initrd %s\n", oneLine(initrd))
	b.WriteString("boot\n")
	return []byte(b.String())
}

// oneLine replaces control characters (line breaks above all) in s with '?'.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
