#!/usr/bin/env bash
# ironic-test-env.sh — build (or return from the cache) the Debian trixie trees of the Ironic
# acceptance test (internal/acceptance). Each result is cached under
# CACHE/ironic/ (CACHE: cache-dir.sh) by the sha256 of its inputs (package lists, the
# functions that build it, suite and mirror), built in a temporary directory and renamed into
# place, so a warm call returns at once and an interrupted build never leaves a half-written
# result. The debootstrap base (base-trixie-<hash>) is shared by both.
#
#   scripts/ironic-test-env.sh chroot
#       a trixie chroot with Ironic 2025.1 (ironic-api, ironic-conductor, python3-ironicclient)
#       installed without recommends; prints its directory. Daemons are not started
#       (usr/sbin/policy-rc.d exits 101). Run /usr/bin/ironic (API + conductor) inside it.
#   scripts/ironic-test-env.sh agent-rootfs
#       the Debian part of the agent TEST IMAGE (not a product image): ironic-python-agent
#       10.2.0 with only the Python packages it imports and the tools it calls, as a root
#       tree; prints its directory. scripts/mk-test-initramfs.sh adds the project's kernel
#       modules and rootfs overlay (BASE_ROOT=that directory).
#
# Environment: IPA_OCI_CACHE, DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (debootstrap, chroot) and the apt packages debootstrap and zstd.
set -euo pipefail
. "$(dirname "$0")/cache-dir.sh"
CACHE=$(ipa_oci_cache_dir)/ironic
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
log() { printf 'ironic-test-env: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,20p' "$0" >&2; exit 2; }

# Ironic 2025.1 (Debian 1:29.0.5) as an all-in-one process, plus what the test runs in the
# chroot: update-ca-certificates for the test CA, sqlite3 to clear the parent_node column.
IRONIC_PKGS=(ironic-api ironic-conductor python3-ironicclient ca-certificates sqlite3)

# The agent test image: the Python packages ironic-python-agent 10.2.0 imports at runtime
# (its Depends without libvirt, libguestfs, kazoo, lldpad, tuned, stress-ng, sysbench, fio, git:
# checked by importing every module of ironic_python_agent in the result), the tools IPA calls
# (REFERENCE.md, "What IPA calls at runtime"; fuser from psmisc for cleaning), udev for device
# properties and busybox for the project's init. ironic-python-agent itself is unpacked from
# its .deb (apt would pull its full Depends, ~490 packages).
AGENT_PY=(python3 python3-cryptography python3-eventlet python3-oslo.concurrency python3-oslo.config
	python3-oslo.log python3-oslo.service python3-oslo.utils python3-pbr python3-pint python3-psutil
	python3-pyudev python3-requests python3-stevedore python3-tenacity python3-tooz python3-werkzeug
	python3-zeroconf python3-yaml)
AGENT_TOOLS=(udev kmod iproute2 util-linux mount fdisk gdisk parted mdadm e2fsprogs xfsprogs dosfstools
	hdparm smartmontools nvme-cli efibootmgr qemu-utils lshw dmidecode pciutils bsdextrautils psmisc
	procps coreutils ca-certificates busybox-static)
AGENT_PKGS=("${AGENT_PY[@]}" "${AGENT_TOOLS[@]}")
# Never copied into the image, nor followed: packages that only install or configure others;
# tooz's coordination backends (IPA's burnin imports tooz but no backend); test and doc
# helpers that Debian's Depends pull in; data the agent never reads; systemd itself (udev's
# systemd-udevd and libsystemd-shared are enough).
AGENT_SKIP=(dpkg debconf perl-base init-system-helpers adduser ucf sensible-utils debianutils
	libdebconfclient0 usrmerge usr-is-merged
	python3-kazoo python3-etcd3 python3-etcd3gw python3-grpcio python3-protobuf python3-gevent
	python3-redis python3-pymemcache python3-pymysql python3-zake python3-kerberos
	python3-docutils docutils-common python3-testtools python3-fixtures lsb-release
	python-babel-localedata ieee-data wget systemd)

# Files of those packages the agent never uses: documentation, the udev hwdb sources, test
# suites, ICU (only xfs_scrub links it), the qemu-utils tools other than qemu-img, setuptools.
AGENT_DROP='^(usr/share/(doc|man|info|locale|lintian|bash-completion|zsh|bug)/|usr/lib/udev/hwdb\.d/|.*/tests?/|usr/lib/x86_64-linux-gnu/libicu|usr/sbin/xfs_scrub|usr/bin/qemu-(storage-daemon|nbd|io)$|usr/lib/python3/dist-packages/setuptools/)'

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and chroot); CI runs as root"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap (scripts/setup-test-env.sh)"

# key NAME WORDS... — the cache key of a result: its inputs (NAME, package lists, suite,
# mirror) and the shell functions that build it, so that editing one build does not throw
# away the other (nor repeat debootstrap).
key() {
	{
		printf '%s\n' "$@" "suite=$SUITE" "mirror=$MIRROR" "format=1"
		[ "$1" = base ] || declare -f in_root build "finish_$1"
		[ "$1" != agent-rootfs ] || printf 'skip=%s\ndrop=%s\n' "${AGENT_SKIP[*]}" "$AGENT_DROP"
	} | sha256sum | cut -c1-16
}

# in_root DIR CMD... — run CMD in the chroot DIR with /proc and /dev, in a private mount
# namespace so nothing stays mounted when it ends (also when it is killed).
in_root() {
	local dir=$1; shift
	unshare --mount --propagation private -- sh -c '
		dir=$1; shift
		mount -t proc proc "$dir/proc" && mount --rbind /dev "$dir/dev" &&
		exec chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
	' sh "$dir" "$@"
}

# base — debootstrap --variant=minbase trixie, cached as a tree (copied by the builds below).
base() {
	local k out
	k=$(key base)
	out=$CACHE/base-$SUITE-$k
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.base.lock"
	flock 8
	if [ ! -e "$out/.complete" ]; then
		rm -rf "$out.tmp"
		mkdir -p "$out.tmp"
		log "debootstrap --variant=minbase $SUITE from $MIRROR (log: $out.tmp/debootstrap.log)"
		local start=$SECONDS
		debootstrap --variant=minbase "$SUITE" "$out.tmp/root" "$MIRROR" >"$out.tmp/debootstrap.log" 2>&1 ||
			{ tail -n 20 "$out.tmp/debootstrap.log" >&2; die "debootstrap failed; full log $out.tmp/debootstrap.log"; }
		printf '#!/bin/sh\nexit 101\n' >"$out.tmp/root/usr/sbin/policy-rc.d"
		chmod 0755 "$out.tmp/root/usr/sbin/policy-rc.d"
		printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$out.tmp/root/etc/apt/apt.conf.d/90ipa-oci"
		log "debootstrap done in $((SECONDS - start)) s"
		touch "$out.tmp/.complete"
		rm -rf "$out"
		mv "$out.tmp" "$out"
	fi
	flock -u 8
	exec 8>&-
	echo "$out/root"
}

# build NAME PKGS... — base + apt-get install PKGS, cached; runs finish_NAME in the tree.
build() {
	local name=$1; shift
	local k out b start
	mkdir -p "$CACHE"
	k=$(key "$name" "$@")
	out=$CACHE/$name-$k
	exec 9>"$CACHE/.$name.lock"
	flock 9
	if [ -e "$out/.complete" ]; then
		echo "$out/root"
		return 0
	fi
	b=$(base)
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"
	cp -a "$b" "$out.tmp/root"
	start=$SECONDS
	log "$name: apt-get install ${*} (log: $out.tmp/apt.log)"
	if ! in_root "$out.tmp/root" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" && apt-get clean' \
		sh "$@" >"$out.tmp/apt.log" 2>&1; then
		tail -n 30 "$out.tmp/apt.log" >&2
		die "$name: apt-get install failed; full log $out.tmp/apt.log"
	fi
	log "$name: $(in_root "$out.tmp/root" dpkg-query -W -f='.' | wc -c) packages installed in $((SECONDS - start)) s"
	"finish_$name" "$out.tmp/root"
	touch "$out.tmp/.complete"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	echo "$out/root"
}

finish_chroot() { :; }

# finish_agent-rootfs TREE — unpack ironic-python-agent into TREE, then replace TREE by a tree
# holding only the files of the wanted packages and what they depend on.
finish_agent-rootfs() {
	local tree=$1 image=$1.image list
	in_root "$tree" sh -c 'cd /tmp && apt-get download -qq ironic-python-agent && dpkg-deb -x ironic-python-agent_*.deb / &&
		dpkg-deb -f ironic-python-agent_*.deb Version >/etc/ipa-test-image.ipa-version && rm -f ironic-python-agent_*.deb'
	list=$tree/tmp/image-files
	# The dependency closure of AGENT_PKGS among the installed packages (Depends and
	# Pre-Depends, first installed alternative), stopping at AGENT_SKIP.
	in_root "$tree" python3 -c '
import subprocess, sys
skip = set(sys.argv[1].split())
want = sys.argv[2:]
out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\t${Provides}\n"],
                     capture_output=True, text=True, check=True).stdout
deps, provides = {}, {}
for line in out.splitlines():
    p, d, pr = line.split("\t")
    deps[p] = d
    for x in pr.split(","):
        x = x.strip().split(" ")[0].split(":")[0]
        if x:
            provides.setdefault(x, []).append(p)
seen, stack = set(), list(want)
while stack:
    p = stack.pop().split(":")[0]
    if p in seen or p in skip:
        continue
    if p not in deps:
        stack.extend(provides.get(p, [])[:1])
        continue
    seen.add(p)
    for alt in deps[p].split(","):
        for a in (x.strip().split(" ")[0].split(":")[0] for x in alt.split("|") if x.strip()):
            if a in deps or a in provides:
                stack.append(a)
                break
missing = [p for p in want if p not in seen]
if missing:
    sys.exit("not installed: " + " ".join(missing))
for p in sorted(seen):
    print(p)
' "${AGENT_SKIP[*]}" "${AGENT_PKGS[@]}" >"$tree/tmp/image-packages"
	log "agent-rootfs: $(wc -l <"$tree/tmp/image-packages") packages in the test image"
	# shellcheck disable=SC2046
	in_root "$tree" dpkg-query -L $(cat "$tree/tmp/image-packages") | grep '^/' | sort -u >"$list"
	{
		# Not owned by a package: merged-/usr links, files made by maintainer scripts.
		printf '%s\n' /bin /sbin /lib /lib64 /etc/passwd /etc/group /etc/shadow /etc/gshadow \
			/etc/ld.so.cache /etc/ipa-test-image.ipa-version
		find "$tree/etc/alternatives" "$tree/etc/ssl/certs" -mindepth 0 | sed "s|^$tree||"
		find "$tree/usr/lib/python3/dist-packages/ironic_python_agent" "$tree/usr/lib/python3/dist-packages"/ironic_python_agent-*.egg-info \
			"$tree/usr/bin/ironic-python-agent" "$tree/etc/ironic-python-agent" "$tree/etc/ironic-python-agent.d" | sed "s|^$tree||"
	} >>"$list"
	mkdir -p "$image"
	(cd "$tree" && sed 's|^/||' "$list" | grep -v -E "$AGENT_DROP" |
		tar --no-recursion --ignore-failed-read -cf - -T - 2>/dev/null) | tar -xf - -C "$image"
	mkdir -p "$image"/{proc,sys,dev,run,tmp,var/log,var/lib/ironic-python-agent,root}
	cp "$tree/tmp/image-packages" "$image/etc/ipa-test-image.packages"
	# Byte-compile with hash-checked .pyc that never go stale, so the image can carry any mtimes
	# (mk-test-initramfs.sh normalises them) and the agent starts without compiling.
	in_root "$image" python3 -m compileall -q -j0 --invalidation-mode unchecked-hash /usr/lib/python3 /usr/lib/python3.13 >/dev/null ||
		die "agent-rootfs: compileall failed"
	# Every ironic_python_agent module (tests aside) must import: nothing the agent needs is missing.
	in_root "$image" python3 -c '
import importlib, pkgutil, sys, ironic_python_agent as p
bad = []
for m in pkgutil.walk_packages(p.__path__, "ironic_python_agent."):
    if ".tests" in m.name:
        continue
    try:
        importlib.import_module(m.name)
    except ModuleNotFoundError as e:
        # Debian 10.2.0-3 does not ship hardware_managers/nvidia (mlnx imports it): stevedore
        # skips that hardware manager at runtime. Anything else missing is our trimming.
        if not (e.name or "").startswith("ironic_python_agent."):
            bad.append("%s: %s" % (m.name, e))
        else:
            print("known packaging gap: %s: %s" % (m.name, e), file=sys.stderr)
    except Exception as e:
        bad.append("%s: %s" % (m.name, e))
if bad:
    raise SystemExit("cannot import:\n" + "\n".join(bad))
' || die "agent-rootfs: ironic_python_agent does not import in the trimmed tree"
	rm -rf "$tree"
	mv "$image" "$tree"
	log "agent-rootfs: $(du -sm "$tree" | cut -f1) MiB"
}

[ $# -ge 1 ] || usage
case "$1" in
base) base ;;
chroot) build chroot "${IRONIC_PKGS[@]}" ;;
agent-rootfs) build agent-rootfs "${AGENT_PKGS[@]}" ;;
*) usage ;;
esac
