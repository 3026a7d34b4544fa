#!/usr/bin/env bash
# kernel-build.sh — configure or build the ipa-oci Linux kernel from Debian's linux-source
# tarball, cached by the sha256 of (config file, tarball name, arch).
#
#   scripts/kernel-build.sh config ARCH OUTDIR
#       extract the source (cached) and write OUTDIR/.config = `make olddefconfig` of
#       kernel-config/ARCH.config; prints OUTDIR/.config
#   scripts/kernel-build.sh build [ARCH]          (ARCH defaults to x86_64)
#       build kernel image + modules (xz); prints the result directory, which holds
#       `bzImage` (x86_64) or `Image` (arm64), `config`, `modules/lib/modules/<version>/`
#       and `build.log`. A second call with the same inputs returns at once.
#
# Environment: IPA_OCI_CACHE (default ~/.cache/ipa-oci), IPA_OCI_KERNEL_SOURCE (default
# /usr/src/linux-source-6.12.tar.xz), JOBS (default nproc), CROSS_COMPILE (arm64 default
# aarch64-linux-gnu- when that compiler exists).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${IPA_OCI_CACHE:-$HOME/.cache/ipa-oci}/kernel
TARBALL=${IPA_OCI_KERNEL_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
JOBS=${JOBS:-$(nproc)}
log() { printf 'kernel-build: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,18p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1; shift

karch() { # kernel ARCH= value
	case "$1" in
	x86_64) echo x86_64 ;;
	arm64|aarch64) echo arm64 ;;
	*) die "unknown arch $1 (want x86_64 or arm64)" ;;
	esac
}
cross() {
	if [ "$1" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
		if [ -n "${CROSS_COMPILE:-}" ]; then echo "$CROSS_COMPILE"
		elif command -v aarch64-linux-gnu-gcc >/dev/null; then echo aarch64-linux-gnu-
		fi
	fi
}

# source_dir — extract the tarball once into $CACHE/src/<name>, under a lock.
source_dir() {
	[ -r "$TARBALL" ] || die "kernel source $TARBALL missing: run scripts/setup-test-env.sh (apt package linux-source-6.12)"
	local name; name=$(basename "$TARBALL"); name=${name%.tar.*}
	local dir=$CACHE/src/$name
	mkdir -p "$CACHE/src"
	exec 9>"$CACHE/src/.lock"
	flock 9
	if [ ! -e "$dir/.complete" ]; then
		log "extracting $TARBALL into $dir"
		rm -rf "$dir" "$dir.tmp"
		mkdir -p "$dir.tmp"
		tar -xf "$TARBALL" -C "$dir.tmp" --strip-components=1
		touch "$dir.tmp/.complete"
		mv "$dir.tmp" "$dir"
	fi
	flock -u 9
	exec 9>&-
	echo "$dir"
}

configure() { # configure ARCH OUTDIR
	local arch src cfg
	arch=$(karch "$1")
	cfg=$ROOT/kernel-config/$arch.config
	[ -r "$cfg" ] || die "no kernel config $cfg"
	src=$(source_dir)
	mkdir -p "$2"
	cp "$cfg" "$2/.config"
	make -s -C "$src" O="$2" ARCH="$arch" CROSS_COMPILE="$(cross "$arch")" olddefconfig >&2
}

case "$cmd" in
config)
	[ $# -eq 2 ] || usage
	configure "$1" "$2"
	echo "$2/.config"
	;;
build)
	arch=$(karch "${1:-x86_64}")
	cfg=$ROOT/kernel-config/$arch.config
	[ -r "$cfg" ] || die "no kernel config $cfg"
	hash=$( { cat "$cfg"; echo "tarball=$(basename "$TARBALL") arch=$arch"; } | sha256sum | cut -c1-16)
	out=$CACHE/$arch-$hash
	if [ -e "$out/.complete" ]; then
		log "cached: $out"
		echo "$out"
		exit 0
	fi
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.build-$arch-$hash.lock"
	flock 8
	if [ -e "$out/.complete" ]; then echo "$out"; exit 0; fi
	obj=$out.obj
	rm -rf "$out" "$out.tmp"
	mkdir -p "$out.tmp"
	log "building $arch kernel into $out (log: $out.tmp/build.log)"
	configure "$arch" "$obj"
	image=bzImage; [ "$arch" = arm64 ] && image=Image
	start=$(date +%s)
	if ! make -C "$obj" ARCH="$arch" CROSS_COMPILE="$(cross "$arch")" -j"$JOBS" \
		KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=ipa-oci KBUILD_BUILD_HOST=ipa-oci \
		"$image" modules >"$out.tmp/build.log" 2>&1; then
		tail -n 40 "$out.tmp/build.log" >&2
		die "kernel build failed; full log in $out.tmp/build.log"
	fi
	make -C "$obj" ARCH="$arch" CROSS_COMPILE="$(cross "$arch")" INSTALL_MOD_PATH="$out.tmp/modules" \
		INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod modules_install >>"$out.tmp/build.log" 2>&1 ||
		die "modules_install failed; see $out.tmp/build.log"
	# No build/source symlinks back into the object tree, which is removed below.
	rm -f "$out.tmp"/modules/lib/modules/*/build "$out.tmp"/modules/lib/modules/*/source
	cp "$obj/arch/$arch/boot/$image" "$out.tmp/$image"
	cp "$obj/.config" "$out.tmp/config"
	log "built in $(( $(date +%s) - start )) s: $image $(stat -c %s "$out.tmp/$image") bytes"
	touch "$out.tmp/.complete"
	mv "$out.tmp" "$out"
	rm -rf "$obj"
	echo "$out"
	;;
*) usage ;;
esac
