#!/usr/bin/env bash
# bench-kernel-incremental.sh — what a kernel config edit costs to build, in one run: the edit
# of docs/customise.md (CONFIG_DUMMY=m on kernel-config/x86_64.config, saved back with
# savedefconfig) built cold (fresh object directory, bzImage + modules) against the
# incremental build `scripts/kernel-build.sh build-config` does from the committed config's
# cached object directory. Prints both times, the objects each compiled, and the ratio.
#
#   scripts/bench-kernel-incremental.sh [JOBS]
#
# Reads the shared cache (CACHE/kernel, CACHE from cache-dir.sh: source, the committed
# config's build and object directory, built first when missing); writes nothing there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/cache-dir.sh"
SHARED=$(ipa_oci_cache_dir)
JOBS=${1:-$(nproc)}
export JOBS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kb() { bash "$ROOT/scripts/kernel-build.sh" "$@"; }

# The edit, as the test makes it.
cp "$ROOT/kernel-config/x86_64.config" "$work/x86_64.config"
kb config x86_64 "$work/k" "$work/x86_64.config" >/dev/null
"$(kb source)/scripts/config" --file "$work/k/.config" --module DUMMY
kb savedefconfig x86_64 "$work/k" "$work/x86_64.config" >/dev/null
diff "$ROOT/kernel-config/x86_64.config" "$work/x86_64.config" | sed 's/^/edit: /' || true

# The committed config's build and object directory (cold once; then cached).
kb build-config "$ROOT/kernel-config/x86_64.config" x86_64 >/dev/null
tarball=${IPA_OCI_KERNEL_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
h=x86_64-$( { cat "$ROOT/kernel-config/x86_64.config"; echo "tarball=$(basename "$tarball") arch=x86_64"; } | sha256sum | cut -c1-16)
[ -e "$SHARED/kernel/obj/$h/.complete" ] || { echo "no cached object directory $SHARED/kernel/obj/$h" >&2; exit 1; }

# Incremental, into a private cache that borrows the source and the base build.
priv=$work/cache/kernel
mkdir -p "$priv/obj"
ln -s "$SHARED/kernel/src" "$priv/src"
ln -s "$SHARED/kernel/obj/$h" "$priv/obj/$h"
ln -s "$SHARED/kernel/$h" "$priv/$h"
inc=$(IPA_OCI_CACHE=$work/cache kb build-config "$work/x86_64.config" x86_64)
inc_s=$(cat "$inc/seconds")
inc_n=$(grep -cE '^  CC( \[M\])? ' "$inc/build.log" || true)

# Cold: the same config in a fresh object directory.
kb config x86_64 "$work/cold" "$work/x86_64.config" >/dev/null
start=$(date +%s)
make -C "$work/cold" ARCH=x86_64 -j"$JOBS" KBUILD_BUILD_TIMESTAMP=1970-01-01 KBUILD_BUILD_USER=ipa-oci \
	KBUILD_BUILD_HOST=ipa-oci bzImage modules >"$work/cold.log" 2>&1
cold_s=$(( $(date +%s) - start ))
cold_n=$(grep -cE '^  CC( \[M\])? ' "$work/cold.log" || true)
cmp -s "$work/cold/arch/x86/boot/bzImage" "$inc/bzImage" && same=identical || same=different

printf 'cold build:        %5d s, %5d objects compiled (-j%s)\n' "$cold_s" "$cold_n" "$JOBS"
printf 'incremental build: %5d s, %5d objects compiled\n' "$inc_s" "$inc_n"
awk -v c="$cold_s" -v i="$inc_s" 'BEGIN { if (i > 0) printf "ratio: %.1fx\n", c / i }'
echo "bzImage of the two builds: $same"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
