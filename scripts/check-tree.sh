#!/usr/bin/env bash
# check-tree.sh — refuse a tree with leftovers of a merge or a patch (*.orig, *.rej) or editor
# backups (*~), tracked or not (ignored build output aside). Run by .ci/run before the tests.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
stray=$(git ls-files --cached --others --exclude-standard | grep -E '\.(orig|rej)$|~$' || true)
if [ -n "$stray" ]; then
  printf 'check-tree: stray files (leftovers of a merge or patch); delete them or git rm them:\n%s\n' "$stray" >&2
  exit 1
fi
