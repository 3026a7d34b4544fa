#!/usr/bin/env bash
# start-dockerd.sh — start a Docker engine when none answers (called by setup-test-env.sh).
# Tries overlay2, then vfs. A daemon that does not come up is stopped by the PID this script
# started, never by name: another engine on the machine (or a test's own) is left alone.
#   IPA_OCI_DOCKERD_STATE  directory for the pid and log files (default /run/ipa-oci-dockerd)
#   IPA_OCI_DOCKERD_TRIES  half-second polls per attempt (default 60)
set -euo pipefail
log() { printf 'start-dockerd: %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
docker version >/dev/null 2>&1 && exit 0

state=${IPA_OCI_DOCKERD_STATE:-/run/ipa-oci-dockerd}
tries=${IPA_OCI_DOCKERD_TRIES:-60}
$SUDO mkdir -p "$state"
log "starting dockerd"
for driver in overlay2 vfs; do
  $SUDO sh -c "nohup dockerd --storage-driver=$driver --iptables=false --ip6tables=false --bridge=none \
    >'$state/dockerd.log' 2>&1 & echo \$! >'$state/dockerd.pid'"
  for _ in $(seq 1 "$tries"); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  if docker version >/dev/null 2>&1; then
    log "dockerd up ($driver), pid $(cat "$state/dockerd.pid")"
    exit 0
  fi
  log "dockerd with $driver did not come up; see $state/dockerd.log"
  pid=$($SUDO cat "$state/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
done
log "no Docker engine"
exit 1
