#!/usr/bin/env bash
# fetch-arm64-busybox.sh — fetch Debian's busybox-static for arm64 (for the arm64 boot-test
# initramfs, scripts/mk-test-initramfs.sh with BUSYBOX=...) and print the path of the binary.
#
#   scripts/fetch-arm64-busybox.sh
#
# The .deb is fetched with `apt-get download busybox-static:arm64` (adding the arm64 dpkg
# architecture and running apt-get update when the package is not known yet) and unpacked
# with dpkg-deb under CACHE/busybox-arm64/ (CACHE: cache-dir.sh). A second call
# returns the cached binary at once. Needs root (or sudo) only for the first fetch.
set -euo pipefail
. "$(dirname "$0")/cache-dir.sh"
CACHE=$(ipa_oci_cache_dir)/busybox-arm64
BIN=$CACHE/root/bin/busybox
log() { printf 'fetch-arm64-busybox: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [ -e "$CACHE/.complete" ] && [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -e "$CACHE/.complete" ] && [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi
dl=$CACHE/dl.tmp
rm -rf "$dl" "$CACHE/root.tmp"
mkdir -p "$dl"
# apt-get download drops privileges to _apt when it can: make the directory writable.
chmod 0777 "$dl"
download() { (cd "$dl" && apt-get download -q busybox-static:arm64 >&2); }
if ! download 2>/dev/null; then
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		log "dpkg --add-architecture arm64"
		$SUDO dpkg --add-architecture arm64
	fi
	log "apt-get update (arm64 package lists)"
	$SUDO apt-get update -qq >&2 || die "apt-get update failed"
	download || die "apt-get download busybox-static:arm64 failed (is the Debian mirror reachable?)"
fi
deb=$(ls "$dl"/busybox-static_*_arm64.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || die "no busybox-static arm64 .deb in $dl"
dpkg-deb -x "$deb" "$CACHE/root.tmp"
[ -f "$CACHE/root.tmp/bin/busybox" ] || die "$deb has no bin/busybox"
# ELF e_machine (offset 18, little endian) must be 183 (EM_AARCH64).
machine=$(od -An -tu2 -j18 -N2 "$CACHE/root.tmp/bin/busybox" | tr -d ' ')
[ "$machine" = 183 ] || die "$deb: bin/busybox has ELF machine $machine, want 183 (aarch64)"
dpkg-deb -f "$deb" Version >"$CACHE/root.tmp/VERSION"
rm -rf "$CACHE/root"
mv "$CACHE/root.tmp" "$CACHE/root"
rm -rf "$dl"
touch "$CACHE/.complete"
log "busybox-static arm64 $(cat "$CACHE/root/VERSION") in $CACHE/root"
echo "$BIN"
