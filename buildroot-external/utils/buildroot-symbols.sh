#!/bin/sh
# buildroot-symbols.sh BUILDROOT_GIT_DIR TAG — print every BR2_* Kconfig symbol of a Buildroot
# release (used to regenerate testdata/buildroot-2025.02-symbols.txt, which the lint test
# checks the defconfigs against).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BUILDROOT_GIT_DIR TAG" >&2; exit 2; }
cd "$1"
commit=$(git rev-parse "$2^{commit}")
echo "# Every Kconfig symbol (config/menuconfig BR2_*) of Buildroot $2, commit $commit."
echo "# Made with: git grep -h -E '^\\s*(menu)?config\\s+BR2_[A-Za-z0-9_]+' $2 -- '*Config.in' '*Config.in.*' |"
echo "#   sed -E 's/^\\s*(menu)?config\\s+(BR2_[A-Za-z0-9_]+).*/\\\2/' | sort -u"
echo "# Regenerate with buildroot-external/utils/buildroot-symbols.sh BUILDROOT_GIT_DIR TAG."
git grep -h -E '^\s*(menu)?config\s+BR2_[A-Za-z0-9_]+' "$2" -- '*Config.in' '*Config.in.*' |
	sed -E 's/^\s*(menu)?config\s+(BR2_[A-Za-z0-9_]+).*/\2/' | sort -u
