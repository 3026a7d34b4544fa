#!/bin/sh
# post-build.sh TARGET_DIR IPA_GIT_URL IPA_GIT_REF REQUIREMENTS_GIT_URL REQUIREMENTS_GIT_REF
#
# Buildroot post-build script of the IPA ramdisk (BR2_ROOTFS_POST_BUILD_SCRIPT; the four
# arguments come from BR2_ROOTFS_POST_SCRIPT_ARGS, i.e. the BR2_IPA_* options of Config.in).
# Runs after the packages (including ironic-python-agent and its wheels, installed by
# package/ironic-python-agent) and the rootfs overlay are in TARGET_DIR. No network.
#  - keeps only the init scripts the ramdisk wants (the overlay's, udev, syslog, sysctl);
#  - checks the agent and the tools it calls are installed;
#  - records what was built in /etc/ipa-build-info.
set -eu
TARGET_DIR=$1
IPA_URL=${2:-} IPA_REF=${3:-} REQ_URL=${4:-} REQ_REF=${5:-}
EXT=${BR2_EXTERNAL_IPA_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}
die() { echo "post-build: $*" >&2; exit 1; }
warn() { echo "post-build: WARNING: $*" >&2; }

# 1. Wheels: nothing to check. ipa-oci generates the wheel list from ipa-oci.lock and passes
#    BR2_IPA_REQUIREMENTS_GIT_* from the same lock, so the wheels cannot be pinned for other
#    upper-constraints than the ones recorded, and Buildroot's hash check verified each one.

# 2. Init scripts: ours plus the few package ones the ramdisk needs. Daemons that IPA starts
#    by itself when it needs them (chronyd, multipathd, iscsid) must not start at boot.
keep=" S00ipa-early S01syslogd S01seedrng S02klogd S02sysctl S10udev S11ipa-modules S40ipa-network rcS rcK "
for f in "$TARGET_DIR"/etc/init.d/*; do
	[ -e "$f" ] || continue
	n=${f##*/}
	case "$keep" in
	*" $n "*) ;;
	*) echo "post-build: removing init script /etc/init.d/$n"; rm -f "$f" ;;
	esac
done

# 3. The agent and the tools it calls (the list, and which must not be BusyBox applets, is in
#    check-tools.sh).
[ -x "$TARGET_DIR/usr/bin/ironic-python-agent" ] ||
	die "/usr/bin/ironic-python-agent missing from the target: is BR2_PACKAGE_IRONIC_PYTHON_AGENT set?"
"$EXT/board/ipa/check-tools.sh" "$TARGET_DIR" || die "the target lacks tools IPA calls (above)"

# 4. Build record.
mkdir -p "$TARGET_DIR/etc"
cat >"$TARGET_DIR/etc/ipa-build-info" <<INFO
IPA_GIT_URL=$IPA_URL
IPA_GIT_REF=$IPA_REF
REQUIREMENTS_GIT_URL=$REQ_URL
REQUIREMENTS_GIT_REF=$REQ_REF
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-}
INFO
# IPA keeps state here; make sure it exists in the image.
mkdir -p "$TARGET_DIR/var/lib/ironic-python-agent" "$TARGET_DIR/etc/ironic-python-agent.d"
