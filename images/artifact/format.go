// Package artifact is the ipa-oci artifact format: a kernel and an initramfs per architecture,
// each in its own single-layer OCI artifact manifest, listed in one OCI image index per tag,
// with build information attached as a referrer. It packs and checks that format, publishes it
// to a target (Push: per-architecture tags merged into shared ones), reads it back (Resolve,
// Inspect, FetchBuildInfo) and says which Ironic settings use it. Targets are reached through
// the small interfaces of package content. docs/artifact-format.md describes the format.
package artifact

import (
	"fmt"

	"github.com/ipa-oci/ipa-oci/internal/arches"
)

// Artifact and media types of the ipa-oci format.
const (
	ArtifactTypeKernel    = "application/vnd.openstack.ironic-python-agent.kernel.v1"
	ArtifactTypeInitramfs = "application/vnd.openstack.ironic-python-agent.initramfs.v1"
	ArtifactTypeBuildInfo = "application/vnd.openstack.ironic-python-agent.build-info.v1+json"

	// AnnotationComponent names the component an index entry points at: "kernel" or "initramfs".
	AnnotationComponent = "org.openstack.ironic-python-agent.component"

	// DefaultArch is the architecture whose files get the plain metal3 names.
	DefaultArch = "amd64"
)

// Component is one of the two files of an IPA deploy ramdisk.
type Component string

// The two components.
const (
	Kernel    Component = "kernel"
	Initramfs Component = "initramfs"
)

// Components lists the components in the order they are written.
func Components() []Component { return []Component{Kernel, Initramfs} }

// ArtifactType returns the manifest artifactType (and layer media type) of c.
func (c Component) ArtifactType() string {
	if c == Kernel {
		return ArtifactTypeKernel
	}
	return ArtifactTypeInitramfs
}

// IronicSetting is the Ironic driver_info field that takes c: deploy_kernel or deploy_ramdisk.
func (c Component) IronicSetting() string {
	if c == Kernel {
		return "deploy_kernel"
	}
	return "deploy_ramdisk"
}

// Title is the org.opencontainers.image.title of c's layer: the file name oras writes.
func (c Component) Title() string { return "ironic-python-agent." + string(c) }

// componentForArtifactType maps an artifactType back to its component.
func componentForArtifactType(t string) (Component, bool) {
	switch t {
	case ArtifactTypeKernel:
		return Kernel, true
	case ArtifactTypeInitramfs:
		return Initramfs, true
	}
	return "", false
}

// FileName is the name c gets in a pull destination for arch, following metal3's
// ironic-python-agent downloader: plain names for amd64, ironic-python-agent_<uname -m>.<c> otherwise.
func FileName(c Component, arch string) string {
	if arch == DefaultArch {
		return c.Title()
	}
	return fmt.Sprintf("ironic-python-agent_%s.%s", arches.Uname(arch), c)
}
