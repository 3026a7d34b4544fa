#!/usr/bin/env bash
# kernel-build.sh — configure or build the ipa-oci Linux kernel from Debian's linux-source
# tarball, cached by the sha256 of (config file, tarball name, arch).
#
#   scripts/kernel-build.sh config ARCH OUTDIR [CONFIG]
#       extract the source (cached) and write OUTDIR/.config = `make olddefconfig` of CONFIG
#       (default kernel-config/ARCH.config); prints OUTDIR/.config
#   scripts/kernel-build.sh savedefconfig ARCH OUTDIR CONFIG
#       `make olddefconfig savedefconfig` in the configured OUTDIR, written to CONFIG keeping
#       CONFIG's leading comment lines (as `ipa-oci make linux-update-defconfig` does)
#   scripts/kernel-build.sh source
#       prints the extracted source directory (its scripts/config edits a .config)
#   scripts/kernel-build.sh build [ARCH]          (ARCH defaults to x86_64)
#       build kernel image + modules (xz) of kernel-config/ARCH.config; prints the result
#       directory, which holds `bzImage` (x86_64) or `Image` (arm64), `config`,
#       `modules/lib/modules/<version>/`, `build.log` and `seconds` (compile time). A second
#       call with the same inputs returns at once. The object directory is kept (obj/ below)
#       for build-config.
#   scripts/kernel-build.sh build-config CONFIG [ARCH]
#       the same for CONFIG, an edited copy of kernel-config/ARCH.config, built incrementally:
#       from a copy of the object directory of kernel-config/ARCH.config's build (built first
#       when not cached), so kbuild compiles only what the edit changes (it tracks each
#       object's CONFIG_ dependencies). Cached by CONFIG's hash like build.
#
# Cache: CACHE/kernel/, CACHE being ipa-oci's cache directory (cache-dir.sh: $IPA_OCI_CACHE, else
# $XDG_CACHE_HOME/ipa-oci, else ~/.cache/ipa-oci): src/<tarball>/ (the
# source), <arch>-<hash>/ (results), obj/<arch>-<hash>/ (object directories of
# kernel-config's configs, ~0.4 GB each; remove obj/ to reclaim the space), work/<arch>/
# (where every compile runs; removed after it).
#
# Environment: IPA_OCI_CACHE (see cache-dir.sh), IPA_OCI_KERNEL_SOURCE (default
# /usr/src/linux-source-6.12.tar.xz), JOBS (default nproc), CROSS_COMPILE (arm64 default
# aarch64-linux-gnu- when that compiler exists).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/cache-dir.sh"
CACHE=$(ipa_oci_cache_dir)/kernel
TARBALL=${IPA_OCI_KERNEL_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
JOBS=${JOBS:-$(nproc)}
log() { printf 'kernel-build: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,33p' "$0" >&2; exit 2; }
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

kmake() { # kmake ARCH OBJ ARGS... — make in the object directory OBJ
	local arch=$1 obj=$2; shift 2
	make -C "$obj" ARCH="$arch" CROSS_COMPILE="$(cross "$arch")" "$@"
}

configure() { # configure ARCH OUTDIR [CONFIG]
	local arch src cfg
	arch=$(karch "$1")
	cfg=${3:-$ROOT/kernel-config/$arch.config}
	[ -r "$cfg" ] || die "no kernel config $cfg"
	src=$(source_dir)
	mkdir -p "$2"
	cp "$cfg" "$2/.config"
	make -s -C "$src" O="$2" ARCH="$arch" CROSS_COMPILE="$(cross "$arch")" olddefconfig >&2
}

config_hash() { # config_hash ARCH CONFIG — the cache key
	{ cat "$2"; echo "tarball=$(basename "$TARBALL") arch=$1"; } | sha256sum | cut -c1-16
}

image_name() { if [ "$1" = arm64 ]; then echo Image; else echo bzImage; fi; }

# compile ARCH OBJ LOG — build image + modules in the configured OBJ; prints the seconds taken.
compile() {
	local arch=$1 obj=$2 logf=$3 start
	start=$(date +%s)
	if ! kmake "$arch" "$obj" -j"$JOBS" \
		KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=ipa-oci KBUILD_BUILD_HOST=ipa-oci \
		"$(image_name "$arch")" modules >"$logf" 2>&1; then
		tail -n 40 "$logf" >&2
		die "kernel build failed; full log in $logf"
	fi
	echo $(( $(date +%s) - start ))
}

# install_result ARCH OBJ OUT SECONDS — modules_install and the image into OUT (via OUT.tmp,
# where compile wrote build.log).
install_result() {
	local arch=$1 obj=$2 out=$3 secs=$4 image
	image=$(image_name "$arch")
	kmake "$arch" "$obj" INSTALL_MOD_PATH="$out.tmp/modules" INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod \
		modules_install >>"$out.tmp/build.log" 2>&1 || die "modules_install failed; see $out.tmp/build.log"
	# No build/source symlinks back into the object tree.
	rm -f "$out.tmp"/modules/lib/modules/*/build "$out.tmp"/modules/lib/modules/*/source
	cp "$obj/arch/$arch/boot/$image" "$out.tmp/$image"
	cp "$obj/.config" "$out.tmp/config"
	echo "$secs" >"$out.tmp/seconds"
	log "built in $secs s: $image $(stat -c %s "$out.tmp/$image") bytes"
	touch "$out.tmp/.complete"
	rm -rf "$out"
	mv "$out.tmp" "$out"
}

# Every compile runs in the same place, $CACHE/work/ARCH, under a lock: kbuild records the
# absolute path of the tools it builds in the object directory (objtool), and a tool rebuilt at
# another path makes every object rebuild. Object directories are copied to and from the cache.
work_lock() { # work_lock ARCH — serialise the builds that use $CACHE/work/ARCH
	mkdir -p "$CACHE/work"
	exec 6>"$CACHE/work/.$1.lock"
	flock 6
}
work_unlock() { flock -u 6; exec 6>&-; }

# base_build ARCH — the build of kernel-config/ARCH.config with its object directory kept in
# $CACHE/obj/ARCH-HASH; sets BASE_OUT and BASE_OBJ.
base_build() {
	local arch=$1 cfg hash out obj secs w
	cfg=$ROOT/kernel-config/$arch.config
	[ -r "$cfg" ] || die "no kernel config $cfg"
	hash=$(config_hash "$arch" "$cfg")
	out=$CACHE/$arch-$hash
	obj=$CACHE/obj/$arch-$hash
	BASE_OUT=$out BASE_OBJ=$obj
	if [ -e "$out/.complete" ] && [ -e "$obj/.complete" ]; then return; fi
	mkdir -p "$CACHE/obj"
	exec 8>"$CACHE/.build-$arch-$hash.lock"
	flock 8
	if [ ! -e "$obj/.complete" ]; then
		work_lock "$arch"
		w=$CACHE/work/$arch
		rm -rf "$w" "$obj.tmp" "$out.tmp"
		mkdir -p "$out.tmp"
		log "building $arch kernel (kernel-config/$arch.config) in $w (log: $out.tmp/build.log)"
		configure "$arch" "$w" "$cfg"
		secs=$(compile "$arch" "$w" "$out.tmp/build.log")
		log "compiled in $secs s"
		if [ -e "$out/.complete" ]; then rm -rf "$out.tmp"; else install_result "$arch" "$w" "$out" "$secs"; fi
		cp -a "$w" "$obj.tmp"
		echo "$secs" >"$obj.tmp/seconds"
		touch "$obj.tmp/.complete"
		mv "$obj.tmp" "$obj"
		rm -rf "$w"
		work_unlock
	fi
	flock -u 8
	exec 8>&-
}

case "$cmd" in
config)
	[ $# -eq 2 ] || [ $# -eq 3 ] || usage
	configure "$1" "$2" "${3:-}"
	echo "$2/.config"
	;;
savedefconfig)
	[ $# -eq 3 ] || usage
	arch=$(karch "$1"); obj=$2; dest=$3
	[ -e "$obj/.config" ] || die "$obj has no .config: run config first"
	kmake "$arch" "$obj" -s olddefconfig savedefconfig >&2
	# Keep the destination's leading comment lines (savedefconfig writes none).
	{ [ -e "$dest" ] && sed -n '/^# CONFIG_[A-Za-z0-9_]* is not set$/q; /^#/!q; p' "$dest"; cat "$obj/defconfig"; } >"$dest.tmp"
	mv "$dest.tmp" "$dest"
	echo "$dest"
	;;
source)
	source_dir
	;;
build)
	arch=$(karch "${1:-x86_64}")
	cfg=$ROOT/kernel-config/$arch.config
	[ -r "$cfg" ] || die "no kernel config $cfg"
	out=$CACHE/$arch-$(config_hash "$arch" "$cfg")
	if [ -e "$out/.complete" ]; then
		log "cached: $out"
		echo "$out"
		exit 0
	fi
	base_build "$arch"
	echo "$BASE_OUT"
	;;
build-config)
	[ $# -ge 1 ] || usage
	cfg=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
	arch=$(karch "${2:-x86_64}")
	[ -r "$cfg" ] || die "no kernel config $cfg"
	hash=$(config_hash "$arch" "$cfg")
	out=$CACHE/$arch-$hash
	if [ "$hash" = "$(config_hash "$arch" "$ROOT/kernel-config/$arch.config")" ]; then
		base_build "$arch" # the committed config: its build, object directory included
		echo "$BASE_OUT"
		exit 0
	fi
	if [ -e "$out/.complete" ]; then
		log "cached: $out"
		echo "$out"
		exit 0
	fi
	base_build "$arch"
	exec 7>"$CACHE/.build-$arch-$hash.lock"
	flock 7
	if [ ! -e "$out/.complete" ]; then
		work_lock "$arch"
		w=$CACHE/work/$arch
		rm -rf "$w" "$out.tmp"
		mkdir -p "$out.tmp"
		log "building $arch kernel for $cfg from a copy of $BASE_OBJ in $w (log: $out.tmp/build.log)"
		cp -a "$BASE_OBJ" "$w" # time stamps kept: kbuild rebuilds what the new config touches
		rm -f "$w/.complete" "$w/seconds"
		cp "$cfg" "$w/.config"
		kmake "$arch" "$w" -s olddefconfig >&2
		secs=$(compile "$arch" "$w" "$out.tmp/build.log")
		install_result "$arch" "$w" "$out" "$secs"
		rm -rf "$w"
		work_unlock
	fi
	echo "$out"
	;;
*) usage ;;
esac
