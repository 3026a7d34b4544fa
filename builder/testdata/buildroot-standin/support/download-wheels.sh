#!/usr/bin/env bash
# download-wheels.sh O DL_DIR HASHFILE URL...: the stand-in's (NOT Buildroot's) dl-wrapper for
# a package's extra downloads. A file already in DL_DIR is hash-checked and kept; one that
# fails is removed and downloaded again (which fails when DL_DIR is read-only, as in ipa-oci's
# build phase). A download goes to O/build first, is hash-checked, then moved into DL_DIR.
set -eu
o=$1 dl=$2 hashes=$3
shift 3
here=$(dirname "$0")
for url in "$@"; do
	f=${url##*/}
	if [ -f "$dl/$f" ]; then
		if "$here/check-hash.sh" "$dl/$f" "$f" "$hashes"; then continue; fi
		rm -f "$dl/$f" 2>/dev/null || { echo "standin: $dl/$f fails its hash check and cannot be removed" >&2; exit 1; }
	fi
	echo ">>> ironic-python-agent wheels Downloading $f"
	mkdir -p "$o/build"
	tmp=$o/build/.$f.tmp
	wget --tries=1 --timeout=10 -nv -O "$tmp" "$url" || { rm -f "$tmp"; echo "standin: download of $url failed" >&2; exit 1; }
	"$here/check-hash.sh" "$tmp" "$f" "$hashes" || { rm -f "$tmp"; exit 1; }
	mkdir -p "$dl"
	mv "$tmp" "$dl/$f"
done
