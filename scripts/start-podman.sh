#!/usr/bin/env bash
# start-podman.sh — make Debian's Podman (4.3.1 on bookworm) serve the Docker-compatible API
# the builder tests run against a second time (called by setup-test-env.sh, which installs
# podman and catatonit). Rootful, on its own socket; dockerd is left alone. Idempotent.
#
#   host fix   : on a host without CAP_SYS_RESOURCE, rootful Podman asks for 1048576 open files
#                and processes per container and runc fails ("error setting rlimit type 7:
#                operation not permitted"): a containers.conf drop-in sets default_ulimits to
#                what this host allows (Podman runs its runtime with RLIMIT_NPROC 32768).
#   service    : `podman system service --time=0` on $IPA_OCI_PODMAN_SOCK, started in the
#                background when nothing answers there; stopped only by the PID this script
#                recorded (when it does not come up, or when the drop-in changed under it).
#   base image : ipa-oci/debian-base:bookworm copied from dockerd (docker save | podman load),
#                no registry pulls.
#   IPA_OCI_PODMAN_SOCK    socket path (default /run/podman/podman.sock)
#   IPA_OCI_PODMAN_STATE   directory for the pid and log files (default /run/ipa-oci-podman)
#   IPA_OCI_PODMAN_TRIES   half-second polls until the service answers (default 60)
#   IPA_OCI_CONTAINERS_CONF_D  drop-in directory (default /etc/containers/containers.conf.d)
set -euo pipefail
log() { printf 'start-podman: %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
sock=${IPA_OCI_PODMAN_SOCK:-/run/podman/podman.sock}
state=${IPA_OCI_PODMAN_STATE:-/run/ipa-oci-podman}
tries=${IPA_OCI_PODMAN_TRIES:-60}
BASE_IMAGE=ipa-oci/debian-base:bookworm
$SUDO mkdir -p "$state" "$(dirname "$sock")"

ping() { $SUDO curl -sf --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
our_pid() { local p; p=$($SUDO cat "$state/podman.pid" 2>/dev/null) && $SUDO kill -0 "$p" 2>/dev/null && echo "$p"; }
stop_ours() {
  local p
  p=$(our_pid) || return 0
  log "stopping the Podman service this script started (pid $p)"
  $SUDO kill "$p" 2>/dev/null || true
  for _ in $(seq 1 20); do $SUDO kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
}

# --- default_ulimits where the host lacks CAP_SYS_RESOURCE ----------------------------
dropin=${IPA_OCI_CONTAINERS_CONF_D:-/etc/containers/containers.conf.d}/50-ipa-oci-ulimits.conf
capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
if (( (0x$capbnd >> 24 & 1) == 0 )); then
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
  nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  want=$(printf '# ipa-oci test setup (scripts/start-podman.sh): this host lacks CAP_SYS_RESOURCE,\n# so containers may not get more than its hard limits.\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$nofile" "$nofile" "$nproc" "$nproc")
  if [ "$($SUDO cat "$dropin" 2>/dev/null)" != "$want" ]; then
    log "writing $dropin (nofile $nofile, nproc $nproc)"
    $SUDO mkdir -p "$(dirname "$dropin")"
    printf '%s\n' "$want" | $SUDO tee "$dropin" >/dev/null
    stop_ours # a running service read the old configuration
  fi
fi

# --- the service ------------------------------------------------------------------------
if ! ping; then
  stop_ours
  log "starting podman system service on unix://$sock"
  $SUDO sh -c "nohup podman system service --time=0 'unix://$sock' >'$state/podman.log' 2>&1 & echo \$! >'$state/podman.pid'"
  for _ in $(seq 1 "$tries"); do ping && break; sleep 0.5; done
  if ! ping; then
    log "Podman service did not come up; see $state/podman.log"
    stop_ours
    exit 1
  fi
  log "Podman service up, pid $(our_pid)"
fi

# --- base image -------------------------------------------------------------------------
if ! $SUDO podman image exists "$BASE_IMAGE"; then
  log "copying $BASE_IMAGE from dockerd into Podman's store"
  docker save "$BASE_IMAGE" | $SUDO podman load -q >/dev/null
fi
