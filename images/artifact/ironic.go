package artifact

import (
	"fmt"
	"io"
	"strings"
)

// IronicSettings are the deploy_kernel / deploy_ramdisk values of one architecture: oci://
// URLs by manifest digest, the only form Ironic (2025.1+) accepts for OCI artifacts.
type IronicSettings struct {
	Arch          string `json:"arch"` // OCI architecture: amd64, arm64
	DeployKernel  string `json:"deploy_kernel"`
	DeployRamdisk string `json:"deploy_ramdisk"`
}

// IronicSettings returns the platform's Ironic settings, or false for an OCI layout reference
// (no registry, no oci:// URL).
func (p PlatformFiles) IronicSettings() (IronicSettings, bool) {
	s := IronicSettings{Arch: p.Arch, DeployKernel: p.Ironic[Kernel.IronicSetting()], DeployRamdisk: p.Ironic[Initramfs.IronicSetting()]}
	return s, s.DeployKernel != "" && s.DeployRamdisk != ""
}

// ironicArch is the machine name Ironic uses in [conductor]deploy_*_by_arch (the node's
// properties/cpu_arch): x86_64 for amd64, aarch64 for arm64.
func ironicArch(ociArch string) string {
	switch ociArch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return ociArch
}

// BaremetalCommand is the python-ironicclient line that sets both URLs on one node.
func (s IronicSettings) BaremetalCommand(node string) string {
	return fmt.Sprintf("baremetal node set %s --driver-info deploy_kernel=%s --driver-info deploy_ramdisk=%s",
		node, s.DeployKernel, s.DeployRamdisk)
}

// ConfSnippet is the ironic.conf [conductor] section that makes the URLs the default for every
// node: deploy_kernel/deploy_ramdisk for amd64, deploy_*_by_arch for other architectures.
func (s IronicSettings) ConfSnippet() string {
	if s.Arch == "" || s.Arch == DefaultArch {
		return fmt.Sprintf("[conductor]\ndeploy_kernel = %s\ndeploy_ramdisk = %s\n", s.DeployKernel, s.DeployRamdisk)
	}
	a := ironicArch(s.Arch)
	return fmt.Sprintf("[conductor]\ndeploy_kernel_by_arch = %s:%s\ndeploy_ramdisk_by_arch = %s:%s\n", a, s.DeployKernel, a, s.DeployRamdisk)
}

// WriteText writes the settings in their three forms, every line prefixed with indent: the
// deploy_kernel=/deploy_ramdisk= pair, a `baremetal node set` line, an ironic.conf snippet.
func (s IronicSettings) WriteText(w io.Writer, indent string) {
	fmt.Fprintf(w, "%sIronic settings:\n", indent)
	fmt.Fprintf(w, "%s  deploy_kernel=%s\n%s  deploy_ramdisk=%s\n", indent, s.DeployKernel, indent, s.DeployRamdisk)
	fmt.Fprintf(w, "%sPer node (python-ironicclient):\n%s  %s\n", indent, indent, s.BaremetalCommand("NODE"))
	fmt.Fprintf(w, "%sFor every node (ironic.conf):\n", indent)
	for _, line := range strings.Split(strings.TrimSuffix(s.ConfSnippet(), "\n"), "\n") {
		fmt.Fprintf(w, "%s  %s\n", indent, line)
	}
}
