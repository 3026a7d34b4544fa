#!/bin/sh
# check-tools.sh TARGET_DIR
#
# Fails, naming each one, when a tool ironic-python-agent calls is missing from TARGET_DIR
# (ironic_python_agent: hardware.py, disk_utils.py, raid_utils.py, efi_utils.py,
# inspector.py, ...; fuser: the agent runs it on every device it erases), or when one of
# FULL_TOOLS is only a BusyBox applet. Called by post-build.sh; lint_test.go runs it on
# stand-in target trees and checks that both defconfigs provide every tool listed here.
#
# util-linux, coreutils and BusyBox overlap: for most tools any provider will do. BusyBox
# installs its applets without overwriting (install-noclobber), so a full package that
# kconfig silently dropped leaves a BusyBox applet in its place. FULL_TOOLS are the ones
# whose BusyBox applet lacks the options the agent passes: blkid (-s/-o), hdparm (ATA
# security erase) and shred (GNU long options --force --zero --iterations).
set -eu
TARGET_DIR=$1

TOOLS="mdadm sgdisk parted partprobe partx lsblk blkid wipefs blockdev dd hdparm smartctl
nvme shred efibootmgr qemu-img lshw dmidecode lscpu lspci hexdump ipmitool multipath
multipathd iscsistart udevadm mount chroot mkfs.ext4 mkfs.xfs mkfs.vfat ip chronyd hwclock
dmesg df iptables ps modprobe lsscsi fuser"
FULL_TOOLS="blkid hdparm shred"

# find_tool NAME: the first of bin, sbin, usr/bin, usr/sbin (the init's PATH order) that
# has NAME, as a path inside TARGET_DIR; empty when none has.
find_tool() {
	for d in bin sbin usr/bin usr/sbin; do
		if [ -e "$TARGET_DIR/$d/$1" ] || [ -L "$TARGET_DIR/$d/$1" ]; then
			echo "$TARGET_DIR/$d/$1"
			return
		fi
	done
}

missing=""
applets=""
for tool in $TOOLS; do
	path=$(find_tool "$tool")
	if [ -z "$path" ]; then
		missing="$missing $tool"
		continue
	fi
	case " $FULL_TOOLS " in
	*" $tool "*)
		target=$(readlink "$path" || true)
		case "$target" in
		busybox | */busybox) applets="$applets $tool" ;;
		esac
		;;
	esac
done
status=0
if [ -n "$missing" ]; then
	echo "check-tools: tools IPA calls are missing from the target:$missing" >&2
	status=1
fi
if [ -n "$applets" ]; then
	echo "check-tools: only BusyBox applets, which lack options IPA uses, provide:$applets (is the full package, e.g. util-linux, hdparm, coreutils, enabled? BR2_PACKAGE_BUSYBOX_SHOW_OTHERS)" >&2
	status=1
fi
exit $status
