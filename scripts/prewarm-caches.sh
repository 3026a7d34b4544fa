#!/usr/bin/env bash
# prewarm-caches.sh — fill the caches the slowest tests read, so their cold work overlaps the
# rest of the suite instead of running inside it. scripts/test.sh starts it in the background
# as soon as the apt packages are in, while the Go tools and test binaries compile; the tests
# call the same scripts, which share its locks and cache keys: a test that arrives first builds
# the result itself, one that arrives during a build waits for it, one that arrives after it
# takes it at once. Nothing here is needed for correctness; it only moves work earlier.
#
#   Ironic acceptance : scripts/ironic-test-env.sh chroot, agent-rootfs (debootstrap trixie and
#                       apt: mostly network and dpkg, ~10 min cold)
#   kernels           : scripts/kernel-build.sh build x86_64, arm64 (~6 min each cold)
#
# Needs root (debootstrap, chroot) and the packages setup-test-env.sh installs.
# Environment: IPA_OCI_CACHE, DEBIAN_MIRROR (as those scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'prewarm-caches: %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
start=$SECONDS
# The Debian trees first: their downloads leave the CPU to the compiles running beside them.
ironic=""
if [ "$(id -u)" -eq 0 ]; then # the acceptance test skips without root; so does this
	(
		bash scripts/ironic-test-env.sh chroot >/dev/null
		bash scripts/ironic-test-env.sh agent-rootfs >/dev/null
		log "Ironic trees ready"
	) &
	ironic=$!
fi
for arch in x86_64 arm64; do
	bash scripts/kernel-build.sh build "$arch" >/dev/null
	log "kernel $arch ready"
done
[ -z "$ironic" ] || wait "$ironic"
log "done in $((SECONDS - start)) s"
