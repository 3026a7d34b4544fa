#!/usr/bin/env bash
# test-podman-rootless.sh — run builder tests against rootless Podman (called by test.sh after
# the rootful Podman pass, whose builder image it copies). Needs root, to set up the user:
#
#   user      : ipa-oci-rootless (home /home/ipa-oci-rootless), with subordinate uid/gid ranges
#   storage   : native overlay (kernel >= 5.13; Podman 4.3 would otherwise pick vfs)
#   service   : `podman system service` as that user on $XDG_RUNTIME_DIR/podman.sock, started when
#               nothing answers, stopped only by the PID this script recorded
#   images    : the base image and the test builder images (ipa-oci/builder:test-<recipe>) copied
#               from the rootful store (podman save | load) when the rootless store lacks that ID
#   tests     : the builder test binary (built here) and a copy of builder/testdata and
#               Dockerfile.builder, so the user needs no access to the checkout or Go caches
#
# Arguments are passed to the test binary (default: the tests that run phase containers).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf 'test-podman-rootless: %s\n' "$*" >&2; }
if [ "$(id -u)" -ne 0 ]; then
  log "needs root (it creates the test user)"
  exit 1
fi
user=ipa-oci-rootless
run=/run/ipa-oci-podman-rootless # XDG_RUNTIME_DIR: no logind here
sock=$run/podman.sock

if ! id "$user" >/dev/null 2>&1; then
  log "creating user $user"
  useradd -m -s /bin/bash "$user"
fi
uid=$(id -u "$user")
grep -q "^$user:" /etc/subuid || usermod --add-subuids 200000-265535 "$user"
grep -q "^$user:" /etc/subgid || usermod --add-subgids 200000-265535 "$user"
as_user() { runuser -u "$user" -- env HOME="/home/$user" XDG_RUNTIME_DIR="$run" "$@"; }
install -d -o "$user" -g "$user" -m 700 "$run"
conf=/home/$user/.config/containers/storage.conf
if [ ! -f "$conf" ]; then
  as_user mkdir -p "$(dirname "$conf")"
  printf '[storage]\ndriver = "overlay"\n' | as_user tee "$conf" >/dev/null
fi

ping() { curl -sf --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
# A service this script started from a directory that is gone since answers pings but starts no
# container: stop it (by its recorded PID) so that it is started again below.
old=$(cat "$run/service.pid" 2>/dev/null || true)
if [ -n "$old" ] && kill -0 "$old" 2>/dev/null && case "$(readlink "/proc/$old/cwd")" in *" (deleted)") true ;; *) false ;; esac; then
  log "rootless Podman service $old runs in a deleted directory: restarting it"
  pkill -P "$old" 2>/dev/null || true
  kill "$old" 2>/dev/null || true
  for _ in $(seq 1 20); do ping || break; sleep 0.5; done
fi
if ! ping; then
  old=$(cat "$run/service.pid" 2>/dev/null || true)
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then kill "$old"; fi
  log "starting rootless podman system service as $user on unix://$sock"
  # From /: the service outlives this checkout (CI clones afresh), and conmon fails every container
  # start ("Failed to get working directory") once the directory it was started in is gone.
  (cd / && as_user sh -c "nohup podman system service --time=0 'unix://$sock' >'$run/service.log' 2>&1 & echo \$! >'$run/service.pid'")
  for _ in $(seq 1 60); do ping && break; sleep 0.5; done
  if ! ping; then
    log "rootless Podman service did not come up; see $run/service.log"
    kill "$(cat "$run/service.pid")" 2>/dev/null || true
    exit 1
  fi
fi

builders=$(podman images --format '{{.Repository}}:{{.Tag}}' | sed -n 's|^\(localhost/\)\{0,1\}\(ipa-oci/builder:test-.*\)|\2|p')
for image in ipa-oci/debian-base:bookworm $builders; do
  if ! id=$(podman image inspect -f '{{.Id}}' "$image" 2>/dev/null); then
    log "$image is not in the rootful store (the Podman pass builds it); the tests build it here"
    continue
  fi
  if ! as_user podman image exists "$id" 2>/dev/null; then
    log "copying $image ($id) into $user's store"
    podman save "$image" | as_user podman load -q >/dev/null
  fi
done

work=$(mktemp -d /tmp/ipa-oci-rootless.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/builder"
cp -a builder/testdata "$work/builder/"
cp Dockerfile.builder "$work/"
go test -c -o "$work/builder/builder.test" ./builder/
chmod -R a+rX "$work"
if [ $# -eq 0 ]; then
  set -- -test.run '^(TestBuildStandin|TestBuildPhaseHasNoNetwork|TestBuildFailureShowsExitCodeAndLastLines|TestBuildCancelRemovesContainer|TestEngineErrorsPassThrough|TestPhaseContainersAreHardened|TestBuildPhaseCannotPlantHostCode)$'
fi
log "builder tests as $user (uid $uid) against rootless Podman"
cd "$work/builder"
as_user DOCKER_HOST="unix://$sock" IPA_OCI_TEST_ENGINE=podman-rootless ./builder.test -test.count=1 -test.timeout=20m "$@"
cd "$ROOT"
