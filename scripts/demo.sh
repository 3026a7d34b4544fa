#!/usr/bin/env bash
# demo.sh — the main job, end to end on one machine:
#   1. build ipa-oci and the boot checker
#   2. build the IPA kernel from kernel-config/x86_64.config (Debian's linux-source-6.12;
#      cached by config hash under the cache directory's kernel/, see scripts/cache-dir.sh)
#   3. pack an initramfs: busybox, the kernel modules, the project's own init scripts
#      (buildroot-external/board/ipa/rootfs-overlay) and a STAND-IN agent that performs IPA's
#      lookup — the real image gets the Python agent from `ipa-oci build` (Buildroot), which
#      needs the internet for its downloads
#   4. start a CNCF Distribution registry on 127.0.0.1, `ipa-oci push` with build info,
#      `ipa-oci inspect`
#   5. `ipa-oci pull --ipxe` onto a TFTP directory, `sha256sum -c`, `ipa-oci verify --against`
#   6. netboot it in QEMU through iPXE over TFTP; pass = the agent's lookup request arrives
#
#   bash scripts/demo.sh [--uefi]
#
# Environment: OUT (default out/demo), DEMO_REGISTRY_PORT (15000), DEMO_API_PORT (16385),
# IPA_OCI_QEMU_ACCEL (tcg), SKIP_SETUP=1 to skip scripts/setup-test-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/demo}
REG_PORT=${DEMO_REGISTRY_PORT:-15000}
API_PORT=${DEMO_API_PORT:-16385}
UEFI=()
[ "${1:-}" = "--uefi" ] && UEFI=(-uefi)
step() { printf '\n==> %s\n' "$*" >&2; }

if [ "${SKIP_SETUP:-}" != 1 ]; then
  step "installing what the demo needs (scripts/setup-test-env.sh)"
  bash scripts/setup-test-env.sh
fi

step "building ipa-oci and ipa-boot-check"
go build -trimpath -o bin/ipa-oci ./cmd/ipa-oci
go build -trimpath -o bin/ipa-boot-check ./cmd/ipa-boot-check

step "building the kernel from kernel-config/x86_64.config (about 6 min the first time)"
kdir=$(bash scripts/kernel-build.sh build x86_64)
ls -l "$kdir/bzImage" >&2

rm -rf "$OUT" && mkdir -p "$OUT"
step "packing the initramfs (project init scripts + STAND-IN agent)"
bash scripts/mk-test-initramfs.sh "$kdir/modules" "$OUT/initramfs.cpio.gz"
ls -l "$OUT/initramfs.cpio.gz" >&2

step "starting a Distribution registry on 127.0.0.1:$REG_PORT"
cat > "$OUT/registry.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $OUT/registry
http:
  addr: 127.0.0.1:$REG_PORT
YML
OTEL_TRACES_EXPORTER=none .bin/registry serve "$OUT/registry.yml" >"$OUT/registry.log" 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1 && break
  kill -0 $reg_pid 2>/dev/null || { cat "$OUT/registry.log" >&2; exit 1; }
  sleep 0.1
done

REF=127.0.0.1:$REG_PORT/ironic/ipa:demo
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
cat > "$OUT/build-info.json" <<JSON
{
  "note": "demo build: project kernel + test initramfs with a STAND-IN agent, not a Buildroot build",
  "kernel_config_sha256": "$(sha256sum kernel-config/x86_64.config | cut -d' ' -f1)",
  "kernel_sha256": "$(sha256sum "$kdir/bzImage" | cut -d' ' -f1)",
  "initramfs_sha256": "$(sha256sum "$OUT/initramfs.cpio.gz" | cut -d' ' -f1)",
  "source_date_epoch": $SOURCE_DATE_EPOCH
}
JSON

step "ipa-oci push $REF"
bin/ipa-oci push "$REF" --kernel "$kdir/bzImage" --initramfs "$OUT/initramfs.cpio.gz" \
  --ipa-version demo --build-info "$OUT/build-info.json" --tag latest

step "ipa-oci inspect $REF"
bin/ipa-oci inspect "$REF"

step "ipa-oci pull --ipxe onto $OUT/tftp"
bin/ipa-oci pull "$REF" --dest "$OUT/tftp" --ipxe \
  --kernel-arg console=ttyS0,115200 --kernel-arg panic=-1 \
  --kernel-arg "ipa-api-url=http://10.0.2.2:$API_PORT"
bin/ipa-oci pull "$REF" --dest "$OUT/tftp" --ipxe \
  --kernel-arg console=ttyS0,115200 --kernel-arg panic=-1 \
  --kernel-arg "ipa-api-url=http://10.0.2.2:$API_PORT"     # again: up to date, nothing written
(cd "$OUT/tftp" && sha256sum -c SHA256SUMS)
bin/ipa-oci verify "$OUT/tftp" --against "$REF"
cat "$OUT/tftp/boot.ipxe"

step "netbooting $OUT/tftp/boot.ipxe in QEMU (iPXE over TFTP${UEFI:+, UEFI}); serial log: $OUT/serial.log"
bin/ipa-boot-check -tftp "$OUT/tftp" -listen "127.0.0.1:$API_PORT" -memory 512 -cpus 1 \
  -quiet -serial-log "$OUT/serial.log" -timeout 5m "${UEFI[@]}"
