#!/usr/bin/env bash
# check-hash.sh FILE BASENAME HASHFILE...: the stand-in's (NOT Buildroot's) version of
# Buildroot's support/download/check-hash, with its messages: every "sha256 HEX NAME" line
# for BASENAME must match FILE; no line at all is an error (as with
# BR2_DOWNLOAD_FORCE_CHECK_HASHES).
set -eu
file=$1 base=$2
shift 2
n=0
for h in "$@"; do
	[ -f "$h" ] || continue
	while read -r t want f; do
		[ "$t" = sha256 ] && [ "$f" = "$base" ] || continue
		got=$(sha256sum "$file" | cut -d ' ' -f 1)
		if [ "$got" != "$want" ]; then
			printf 'ERROR: while checking hashes from %s\nERROR: %s has wrong sha256 hash:\nERROR: expected: %s\nERROR: got     : %s\nERROR: Incomplete download, or man-in-the-middle (MITM) attack\n' \
				"$h" "$base" "$want" "$got" >&2
			exit 2
		fi
		echo "$base: OK (sha256: $got)"
		n=$((n + 1))
	done <"$h"
done
if [ "$n" -eq 0 ]; then
	echo "ERROR: No hash found for $base" >&2
	exit 3
fi
