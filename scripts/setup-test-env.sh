#!/usr/bin/env bash
# setup-test-env.sh — install and start everything the test suite needs on a fresh
# Debian machine that has only Go, gcc, git and apt. Idempotent: re-running is cheap.
# `setup-test-env.sh --packages` installs the apt packages only (scripts/test.sh starts
# scripts/prewarm-caches.sh right after them).
#
#   apt packages : Docker engine (docker.io), debootstrap, QEMU + OVMF + iPXE ROMs,
#                  Linux 6.12 source, busybox-static, cpio/xz/zstd, curl, tftpd-hpa (the TFTP
#                  server the pull tests serve DIR with; its own daemon is not needed), python3 +
#                  python3-magic + python3-flake8 + shellcheck (Buildroot's utils/check-package)
#   Docker       : starts dockerd (overlay2, falls back to vfs) when no engine answers
#   Podman       : podman + catatonit (the builder tests' second engine): rootful service on
#                  /run/podman/podman.sock, base image copied from dockerd (start-podman.sh);
#                  uidmap + slirp4netns for the rootless pass (test-podman-rootless.sh)
#   base image   : ipa-oci/debian-base:bookworm from debootstrap (no registry pulls here)
#   Go tools     : registry (CNCF Distribution, pinned in go.mod, from internal/cmd/registry:
#                  upstream's server without cloud storage drivers), oras, crane (go.mod's tool block),
#                  built into .bin/
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf 'setup-test-env: %s\n' "$*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PKGS=(docker.io systemd strace debootstrap qemu-system-x86 qemu-utils ovmf ipxe-qemu linux-source-6.12
      busybox-static cpio xz-utils zstd curl bc flex bison libelf-dev libssl-dev make gcc
      iproute2 kmod procps time gcc-aarch64-linux-gnu qemu-system-arm qemu-efi-aarch64 tftpd-hpa
      python3 python3-magic python3-flake8 shellcheck  # this line: Buildroot's utils/check-package
      podman catatonit uidmap slirp4netns)  # Podman's --init, rootless Podman: Debian's podman only recommends them
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = --packages ]; then
  exit 0
fi

# --- Docker engine -----------------------------------------------------------------------
bash scripts/start-dockerd.sh

# --- base image from debootstrap ---------------------------------------------------------
BASE_IMAGE=ipa-oci/debian-base:bookworm
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  dir=$(mktemp -d /tmp/ipa-oci-debootstrap.XXXXXX)
  log "debootstrap bookworm from $MIRROR"
  $SUDO debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >/tmp/ipa-oci-debootstrap.log 2>&1
  # Make the rootfs tar deterministic enough for a stable image.
  $SUDO tar --sort=name --mtime=@0 --numeric-owner -C "$dir" -c . | docker import - "$BASE_IMAGE" >/dev/null
  $SUDO rm -rf "$dir"
fi

# --- Podman: the builder tests' second engine -----------------------------------------
bash scripts/start-podman.sh

# --- Go tools pinned in go.mod ---------------------------------------------------------
mkdir -p "$ROOT/.bin"
need_build=0
for t in registry oras crane; do [ -x "$ROOT/.bin/$t" ] || need_build=1; done
if [ $need_build -eq 1 ] || [ go.mod -nt "$ROOT/.bin/registry" ]; then
  log "building Go tools (registry, oras, crane) from go.mod"
  go build -o "$ROOT/.bin/" ./internal/cmd/registry \
    oras.land/oras/cmd/oras github.com/google/go-containerregistry/cmd/crane
fi
log "ready"
