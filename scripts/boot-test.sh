#!/usr/bin/env bash
# boot-test.sh KERNEL INITRAMFS [--uefi] [--nic MODEL] [--disk CONTROLLER] [--timeout 10m]
#              [--append "ARGS"] [--serial-log FILE]
#
# Boot an IPA ramdisk (e.g. a Buildroot build's ironic-python-agent.kernel and
# ironic-python-agent.initramfs) under QEMU with user networking, SeaBIOS by default or OVMF
# with --uefi, and serve the Ironic API lookup endpoint on the host (reached by the guest
# as 10.0.2.2, passed as ipa-api-url=). Exits 0 as soon as the agent's lookup request
# (GET /v1/lookup?addresses=...) arrives carrying the VM's MAC, 1 when it does not in time.
#
# Needs qemu-system-x86 and ovmf (scripts/setup-test-env.sh installs them) and the Go
# toolchain (the lookup server is cmd/ipa-boot-check). IPA_OCI_QEMU_ACCEL
# selects the accelerator (default tcg; kvm when you have /dev/kvm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 2 ]; then sed -n '2,14p' "$0" >&2; exit 2; fi
kernel=$(realpath "$1") initrd=$(realpath "$2"); shift 2
args=(-kernel "$kernel" -initrd "$initrd")
while [ $# -gt 0 ]; do
	case "$1" in
	--uefi) args+=(-uefi) ;;
	--nic|--disk|--timeout|--append|--serial-log|--mac|--memory)
		[ $# -ge 2 ] || { echo "boot-test: $1 needs a value" >&2; exit 2; }
		args+=("-${1#--}" "$2"); shift ;;
	*) echo "boot-test: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
cd "$ROOT"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/ipa-boot-check" ./cmd/ipa-boot-check
rc=0
"$bin/ipa-boot-check" "${args[@]}" || rc=$?
exit $rc
