#!/usr/bin/env bash
# mk-test-initramfs.sh — assemble a boot-test initramfs: busybox-static, kernel modules,
# the project's own rootfs overlay (buildroot-external/board/ipa/rootfs-overlay: the very
# init scripts the Buildroot image runs) and a STAND-IN agent installed as
# /usr/bin/ironic-python-agent -> ipa-standin-agent (internal/boottest/testdata/). Not an IPA
# image: there is no Python and no real agent in it. With BASE_ROOT set (the Ironic
# acceptance test), the image starts from that root tree instead (Debian's real
# ironic-python-agent, scripts/ironic-test-env.sh agent-rootfs) and gets no stand-in.
#
#   scripts/mk-test-initramfs.sh MODULES_ROOT OUTPUT [EXTRA_DIR]
#
# MODULES_ROOT holds lib/modules/<version>/ (the `modules` directory that
# scripts/kernel-build.sh produces). EXTRA_DIR, if given, is copied over the result last.
# OUTPUT is a compressed newc cpio (COMPRESS=gzip, the default, or zstd), preceded by a tiny
# uncompressed cpio with /dev/console (so no root or fakeroot is needed to make the device
# node). Byte-reproducible: sorted, owners 0:0, every mtime SOURCE_DATE_EPOCH (default 0).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
# Absolute paths: the archive is assembled after a cd into a staging directory.
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
MODULES=$(abs "$1") OUT=$(abs "$2") EXTRA=${3:+$(abs "$3")}
BASE_ROOT=${BASE_ROOT:+$(abs "$BASE_ROOT")}
BUSYBOX=$(abs "${BUSYBOX:-/bin/busybox}")
COMPRESS=${COMPRESS:-gzip}
EPOCH=${SOURCE_DATE_EPOCH:-0}
OVERLAY=$ROOT/buildroot-external/board/ipa/rootfs-overlay
STANDIN=$ROOT/internal/boottest/testdata/ipa-standin-agent
die() { printf 'mk-test-initramfs: %s\n' "$*" >&2; exit 1; }

case "$COMPRESS" in gzip | zstd) ;; *) die "COMPRESS=$COMPRESS: want gzip or zstd" ;; esac
[ -d "$(dirname "$OUT")" ] || die "$(dirname "$OUT") does not exist: cannot write $OUT"
[ -z "$BASE_ROOT" ] || [ -x "$BASE_ROOT/usr/bin/ironic-python-agent" ] || die "BASE_ROOT $BASE_ROOT has no usr/bin/ironic-python-agent"
[ -d "$MODULES/lib/modules" ] || die "$MODULES/lib/modules missing: pass the modules directory of scripts/kernel-build.sh build"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: apt-get install busybox-static (scripts/setup-test-env.sh)"
# ELF e_machine (offset 18, little endian) of a binary: 62 x86_64, 183 aarch64.
elf_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }
case "$(uname -m)" in
x86_64) host_machine=62 ;;
aarch64) host_machine=183 ;;
*) host_machine=unknown ;;
esac
bb_machine=$(elf_machine "$BUSYBOX")
if [ "$bb_machine" = "$host_machine" ]; then
	"$BUSYBOX" --list-full >/dev/null || die "$BUSYBOX is not a busybox binary"
	if command -v ldd >/dev/null && ldd "$BUSYBOX" 2>&1 | grep -q '=>'; then
		die "$BUSYBOX is dynamically linked; install busybox-static"
	fi
	APPLETS=$("$BUSYBOX" --list-full)
else
	# A foreign-arch busybox (e.g. arm64 from scripts/fetch-arm64-busybox.sh) cannot run
	# here: check it statically and take the applet list from the host's busybox-static
	# (BUSYBOX_LIST_FROM), which must be the same Debian version (same applet set).
	case "$bb_machine" in
	62 | 183) ;;
	*) die "$BUSYBOX is not an x86_64 or aarch64 ELF binary (e_machine ${bb_machine:-none})" ;;
	esac
	grep -aq 'BusyBox v' "$BUSYBOX" || die "$BUSYBOX is not a busybox binary"
	! grep -aq '/lib/ld-linux' "$BUSYBOX" || die "$BUSYBOX is dynamically linked; use busybox-static"
	LISTFROM=${BUSYBOX_LIST_FROM:-/bin/busybox}
	[ "$(elf_machine "$LISTFROM")" = "$host_machine" ] || die "$LISTFROM (applet list source) is not a host binary"
	want=$(grep -ao 'BusyBox v[0-9][^ ]* ([^)]*)' "$BUSYBOX" | head -n1 || true)
	have=$("$LISTFROM" 2>&1 | grep -o 'BusyBox v[0-9][^ ]* ([^)]*)' | head -n1 || true)
	[ "$want" = "$have" ] || die "$BUSYBOX is \"$want\" but $LISTFROM is \"$have\": the applet list needs the same version"
	APPLETS=$("$LISTFROM" --list-full) || die "$LISTFROM --list-full failed"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/ipa-test-initramfs.XXXXXX")
tmp=$OUT.tmp.$$
trap 'rm -rf "$stage" "$tmp" "$tmp.dev" "$tmp.main"' EXIT
cd "$stage"
[ -z "$BASE_ROOT" ] || cp -a "$BASE_ROOT/." .
mkdir -p bin sbin usr/bin usr/sbin lib etc proc sys run tmp var/log root dev
cp "$BUSYBOX" bin/busybox
for a in $APPLETS; do
	[ -e "$a" ] || [ -L "$a" ] || ln -s /bin/busybox "$a"
done
cp -a "$MODULES/lib/modules" lib/
cp -a "$OVERLAY/." .
# /init exactly as Buildroot's fs/cpio/init (2025.02) adds it to a cpio rootfs.
cat >init <<'INIT'
#!/bin/sh
# devtmpfs does not get automounted for initramfs
/bin/mount -t devtmpfs devtmpfs /dev
if (exec 0</dev/console) 2>/dev/null; then
    exec 0</dev/console
    exec 1>/dev/console
    exec 2>/dev/console
fi
exec /sbin/init "$@"
INIT
chmod 0755 init
if [ -z "$BASE_ROOT" ]; then
	install -m 0755 "$STANDIN" usr/bin/ipa-standin-agent
	ln -sf ipa-standin-agent usr/bin/ironic-python-agent
fi
echo ipa >etc/hostname
[ -e etc/passwd ] || printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
[ -e etc/group ] || printf 'root:x:0:\ntty:x:5:\n' >etc/group
rm -f etc/resolv.conf
: >etc/resolv.conf
[ -z "$EXTRA" ] || cp -a "$EXTRA/." .
# Same bytes for the same inputs: no build time in the archive.
find . -mindepth 1 -exec touch -h -d "@$EPOCH" {} +

# newc entry writer for the device-node archive.
entry() { # entry INO MODE RDEVMAJOR RDEVMINOR NAME
	local n=$(( ${#5} + 1 ))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$1" "$2" 0 0 1 0 0 0 0 "$3" "$4" "$n" 0
	printf '%s\0' "$5"
	# header (110) + name padded to a multiple of 4
	local pad=$(( (4 - (110 + n) % 4) % 4 ))
	head -c "$pad" /dev/zero
}
{
	entry 1 $((0040755)) 0 0 dev
	entry 2 $((0020600)) 5 1 dev/console
	entry 3 0 0 0 'TRAILER!!!'
	# pad the archive to 512 bytes like cpio does
} >"$tmp.dev"
sz=$(stat -c %s "$tmp.dev")
head -c $(( (512 - sz % 512) % 512 )) /dev/zero >>"$tmp.dev"
compress() { if [ "$COMPRESS" = zstd ]; then zstd -q -T0 -15; else gzip -n -6; fi; }
find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible | compress >"$tmp.main"
cat "$tmp.dev" "$tmp.main" >"$tmp"
rm -f "$tmp.dev" "$tmp.main"
mv "$tmp" "$OUT"
