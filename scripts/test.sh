#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian machine with only Go, gcc, git and apt:
# installs and starts what the tests need (scripts/setup-test-env.sh), then runs gofmt, go vet
# and every Go test: unit, registry integration and interop, Docker builder, kernel and QEMU boots.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
export PATH="$PWD/.bin:$PATH"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.bin/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 70m "$@" ./...
