#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian machine with only Go, gcc, git and apt:
# installs and starts what the tests need (scripts/setup-test-env.sh), then runs gofmt, go vet
# and every Go test: unit, registry integration and interop, Docker builder, kernel and QEMU boots;
# then the builder tests a second time against Podman, and those that run containers a third time
# against rootless Podman. A whole-suite run (no arguments) fills the slowest caches (Debian
# trees of the Ironic test, the kernels) in the background from the start
# (scripts/prewarm-caches.sh), so their downloads overlap the compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
prewarm=""
if [ $# -eq 0 ]; then
  bash scripts/setup-test-env.sh --packages
  prewarm_log=$(mktemp /tmp/ipa-oci-prewarm.XXXXXX)
  echo "test.sh: filling caches in the background (log: $prewarm_log)" >&2
  setsid bash scripts/prewarm-caches.sh >"$prewarm_log" 2>&1 &
  prewarm=$!
  trap '[ -z "$prewarm" ] || kill -- -"$prewarm" 2>/dev/null || true' EXIT
fi
bash scripts/setup-test-env.sh
export PATH="$PWD/.bin:$PATH"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.bin/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
# TestBuilderImageReproducible (a second, uncached builder image build on dockerd, ~2-3 min) is
# skipped here: the Podman pass below builds the image again from nothing in another engine and
# TestBuilderImageSameUnderPodmanAndDocker compares the two file by file, which is the same
# check across engines. `go test ./builder/` alone still runs it.
go test -count=1 -timeout 70m -skip '^TestBuilderImageReproducible$' "$@" ./...
if [ -n "$prewarm" ]; then
  # The tests rebuild whatever the prewarm did not finish, so they are the referee; a failed
  # prewarm is still a failure of the scripts they share.
  if ! wait "$prewarm"; then
    tail -n 30 "$prewarm_log" >&2
    echo "test.sh: scripts/prewarm-caches.sh failed (log: $prewarm_log)" >&2
    exit 1
  fi
  prewarm=""
  cat "$prewarm_log" >&2
fi
# The builder tests again, against Podman's Docker-compatible socket (setup-test-env.sh starts
# it): Podman builds the builder image from nothing, and TestBuilderImageSameUnderPodmanAndDocker
# compares it with dockerd's file by file (the reproducibility check of a whole-suite run).
DOCKER_HOST=unix://${IPA_OCI_PODMAN_SOCK:-/run/podman/podman.sock} IPA_OCI_TEST_ENGINE=podman \
  go test -count=1 -timeout 30m -skip '^TestBuilderImageReproducible$' "$@" ./builder/
# The tests that run phase containers, a third time: rootless Podman (user namespace keep-id),
# with the builder image the Podman pass built. Whole-suite runs only.
if [ $# -eq 0 ]; then
  bash scripts/test-podman-rootless.sh
else
  echo "test.sh: arguments given, rootless Podman pass skipped (scripts/test-podman-rootless.sh runs it)" >&2
fi
