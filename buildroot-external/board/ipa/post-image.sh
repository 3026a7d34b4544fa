#!/bin/sh
# post-image.sh BINARIES_DIR [POST_SCRIPT_ARGS...]
#
# Buildroot post-image script: name the outputs the way Ironic deployments (and metal3's
# downloader) expect and write their sha256 sums:
#   ironic-python-agent.kernel     bzImage (x86_64, xz) or Image.gz (aarch64)
#   ironic-python-agent.initramfs  rootfs.cpio.xz (xz with CRC32, reproducible cpio)
#   ironic-python-agent.sha256sums
set -eu
BINARIES_DIR=$1
cd "$BINARIES_DIR"
kernel=""
for k in bzImage Image.gz Image; do
	if [ -e "$k" ]; then kernel=$k; break; fi
done
[ -n "$kernel" ] || { echo "post-image: no bzImage, Image.gz or Image in $BINARIES_DIR" >&2; exit 1; }
[ -e rootfs.cpio.xz ] || { echo "post-image: rootfs.cpio.xz missing in $BINARIES_DIR (BR2_TARGET_ROOTFS_CPIO_XZ)" >&2; exit 1; }
cp -f "$kernel" ironic-python-agent.kernel
cp -f rootfs.cpio.xz ironic-python-agent.initramfs
sha256sum ironic-python-agent.kernel ironic-python-agent.initramfs >ironic-python-agent.sha256sums
echo "post-image: ironic-python-agent.kernel ($kernel, $(stat -c %s ironic-python-agent.kernel) bytes)," \
	"ironic-python-agent.initramfs ($(stat -c %s ironic-python-agent.initramfs) bytes)"
