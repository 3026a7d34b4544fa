#!/usr/bin/env bash
# bench-pull.sh — how fast and how lean `ipa-oci pull` is against a local CNCF Distribution
# registry, compared in the same run with `oras pull`, `crane blob > file` and `curl` of the blob.
#
# For each initramfs size (default 25 and 250 MB of random bytes behind a gzip header, plus a
# 1 MiB fake bzImage) it pushes with `ipa-oci push`, then runs REPS repetitions (default 5) of,
# interleaved, each after a sync and under /usr/bin/time (wall ms, CPU ms, peak RSS):
#   cold  ipa-oci pull --plain-http REF:TAG --dest <fresh dir>   (index, 2 manifests, kernel +
#                                                                initramfs, hashed, fsynced, renamed)
#         oras pull --plain-http REF@<initramfs manifest digest> -o <fresh dir>
#         crane blob --insecure REF@<layer digest> > file
#         curl -s -o file http://REG/v2/REPO/blobs/<layer digest>
#         curl as above, then fsync the file (ipa-oci fsyncs before it renames)
#   warm  ipa-oci pull into the same dest again (the up-to-date check: one manifest request)
#         curl -s -I of the tag's manifest (the floor: one process, one request)
# Every download is compared with the source file. Prints a markdown table (median wall time,
# min–max, ratio vs curl, CPU, peak RSS) and checks the targets of issue 2 (docs/benchmarks.md).
#
#   bash scripts/bench-pull.sh                 # REPS=5 SIZES="25 250"
#   REPS=3 SIZES=25 bash scripts/bench-pull.sh
#   BENCH_STRICT=1 ...                          # also exit 1 when a target is missed
#   IPA_OCI=/path/to/ipa-oci ...                # measure that binary instead of building one
#
# Exits non-zero when any step fails; the registry is stopped and scratch files removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=${REPS:-5}
SIZES=${SIZES:-"25 250"}
BENCH_STRICT=${BENCH_STRICT:-0}
BIN=$ROOT/.bin
log() { printf 'bench-pull: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in curl cmp awk sort /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup-test-env.sh (apt packages curl, diffutils, time)"
done

# --- tools -------------------------------------------------------------------------------
mkdir -p "$BIN"
if [ -n "${IPA_OCI:-}" ]; then
  [ -x "$IPA_OCI" ] || die "IPA_OCI=$IPA_OCI is not an executable"
  log "using ipa-oci at $IPA_OCI"
else
  log "building ipa-oci"
  go build -o "$BIN/ipa-oci" ./cmd/ipa-oci
  IPA_OCI=$BIN/ipa-oci
fi
declare -A PKG=(
  [registry]=./internal/cmd/registry
  [oras]=oras.land/oras/cmd/oras
  [crane]=github.com/google/go-containerregistry/cmd/crane
)
for t in registry oras crane; do
  [ -x "$BIN/$t" ] || { log "building $t"; go build -o "$BIN/$t" "${PKG[$t]}"; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipa-oci-bench.XXXXXX")
REG_PID=""
cleanup() {
  local rc=$?
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Keep oras/crane away from the user's docker config.
export HOME=$WORK/home DOCKER_CONFIG=$WORK/home/.docker
mkdir -p "$HOME"

# --- registry ----------------------------------------------------------------------------
start_registry() {
  local port
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue # taken
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry-data
http:
  addr: 127.0.0.1:$port
  secret: ipa-oci-bench
EOF
    "$BIN/registry" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REG_PID=$!
    for _ in $(seq 1 100); do
      if curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; then REG=127.0.0.1:$port; return 0; fi
      kill -0 "$REG_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=""
  done
  cat "$WORK/registry.log" >&2
  die "registry did not start"
}
start_registry
log "registry on $REG (pid $REG_PID)"

# --- helpers -----------------------------------------------------------------------------
now_ns() { date +%s%N; }
declare -A WALL=() CPU=() RSS=()
# timed CASE CMD...: runs CMD under /usr/bin/time after a sync (so that no dirty pages of the
# previous measurement are written back during this one), and appends its wall time (ms, from
# date +%s%N), CPU time (user+sys ms) and peak RSS (MB) to CASE's samples.
timed() {
  local case=$1; shift
  local t0 t1 u s m
  sync
  t0=$(now_ns)
  /usr/bin/time -f '%U %S %M' -o "$WORK/time.txt" "$@" >"$WORK/cmd.out" 2>&1 || { cat "$WORK/cmd.out" >&2; die "$*"; }
  t1=$(now_ns)
  read -r u s m <"$WORK/time.txt"
  WALL[$case]+=" $(awk -v d=$(( t1 - t0 )) 'BEGIN{printf "%.3f", d/1e6}')"
  CPU[$case]+=" $(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.0f", (u+s)*1000}')"
  RSS[$case]+=" $(awk -v m="$m" 'BEGIN{printf "%.1f", m/1024}')"
}
last() { local a=(${WALL[$1]}); printf '%.0f' "${a[-1]}"; }
# stats V...: "median min max" of the numbers.
stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f %.1f", m, a[1], a[NR]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
same() { cmp -s "$1" "$2" || die "$2 differs from $1"; }

ROWS=()
MISSES=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
KERNEL=$WORK/bzImage
head -c $((1 << 20)) /dev/urandom >"$KERNEL"
printf 'HdrS' | dd of="$KERNEL" bs=1 seek=$((0x202)) conv=notrunc status=none

for MB in $SIZES; do
  REPO=bench/ipa-$MB
  TAG=v1
  REF=$REG/$REPO:$TAG
  INITRD=$WORK/initramfs-$MB.gz
  { printf '\x1f\x8b\x08\x00'; head -c $(( MB * 1000 * 1000 - 4 )) /dev/urandom; } >"$INITRD"
  log "pushing ${MB} MB initramfs to $REF"
  "$IPA_OCI" push --plain-http "$REF" --kernel "$KERNEL" --initramfs "$INITRD" --ipa-version "$TAG" >/dev/null \
    || die "ipa-oci push $REF"
  LAYER=sha256:$(sha256sum "$INITRD" | cut -d' ' -f1)
  BLOB_URL=http://$REG/v2/$REPO/blobs/$LAYER
  MANIFEST=$("$IPA_OCI" inspect --plain-http "$REF" | sed -n 's/.*deploy_ramdisk=oci:\/\/[^@]*@//p')
  [ -n "$MANIFEST" ] || die "ipa-oci inspect $REF printed no deploy_ramdisk"

  # One untimed round so that every binary and the registry's blob are in the page cache.
  D=$WORK/warmup; rm -rf "$D"; mkdir -p "$D"
  "$IPA_OCI" pull --plain-http "$REF" --dest "$D/ipa" >/dev/null 2>&1 || die "ipa-oci pull $REF"
  "$BIN/oras" pull --plain-http "$REG/$REPO@$MANIFEST" -o "$D/oras" >/dev/null 2>&1 || die "oras pull"
  "$BIN/crane" blob --insecure "$REG/$REPO@$LAYER" >"$D/crane" || die "crane blob"
  curl -sf -o "$D/curl" "$BLOB_URL" || die "curl $BLOB_URL"
  rm -rf "$D"

  WALL=() CPU=() RSS=()
  for rep in $(seq 1 "$REPS"); do
    D=$WORK/run; rm -rf "$D"; mkdir -p "$D/oras"
    timed ipa "$IPA_OCI" pull --plain-http "$REF" --dest "$D/ipa"
    same "$INITRD" "$D/ipa/ironic-python-agent.initramfs"
    same "$KERNEL" "$D/ipa/ironic-python-agent.kernel"
    timed warm "$IPA_OCI" pull --plain-http "$REF" --dest "$D/ipa"
    grep -q '^up to date' "$WORK/cmd.out" || { cat "$WORK/cmd.out" >&2; die "second ipa-oci pull was not up to date"; }
    timed head curl -sf -I -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' "http://$REG/v2/$REPO/manifests/$TAG"
    timed oras "$BIN/oras" pull --plain-http "$REG/$REPO@$MANIFEST" -o "$D/oras"
    same "$INITRD" "$D/oras/ironic-python-agent.initramfs"
    timed crane sh -c 'exec "$0" blob --insecure "$1" >"$2"' "$BIN/crane" "$REG/$REPO@$LAYER" "$D/crane"
    same "$INITRD" "$D/crane"
    timed curl curl -sf -o "$D/curl" "$BLOB_URL"
    same "$INITRD" "$D/curl"
    rm -f "$D/curl"
    # curl, then fsync the file (coreutils sync FILE): the durability ipa-oci pays for.
    timed curlsync sh -c 'curl -sf -o "$1" "$0" && sync "$1"' "$BLOB_URL" "$D/curl"
    same "$INITRD" "$D/curl"
    rm -rf "$D"
    log "${MB} MB rep $rep: ipa-oci $(last ipa) ms, oras $(last oras), crane $(last crane), curl $(last curl), curl+fsync $(last curlsync), warm $(last warm)"
  done

  read -r M_CURL _ _ <<<"$(stats ${WALL[curl]})"
  row() { # case name -> table row
    local m lo hi cpu rss
    read -r m lo hi <<<"$(stats ${WALL[$1]})"
    read -r cpu _ _ <<<"$(stats ${CPU[$1]})"
    read -r _ _ rss <<<"$(stats ${RSS[$1]})"
    ROWS+=("| $MB MB | $2 | $m | $lo–$hi | $(ratio "$m" "$M_CURL")x | ${cpu%.*} | $rss |")
    LAST=$m
  }
  row ipa "ipa-oci pull, cold (fresh dest)"; M_IPA=$LAST
  row oras "oras pull"
  row crane "crane blob > file"
  row curl "curl blob"
  row curlsync "curl blob + fsync"
  row warm "ipa-oci pull, warm (up to date)"; M_WARM=$LAST
  row head "curl -I manifest (one request)"
  read -r _ _ rss <<<"$(stats ${RSS[ipa]})"
  eval "RSS_IPA_$MB=\$rss"

  r=$(ratio "$M_IPA" "$M_CURL")
  awk -v r="$r" 'BEGIN{exit !(r <= 1.2)}' || MISSES+=("${MB} MB cold: ipa-oci ${r}x curl (target <= 1.2x)")
  awk -v m="$M_WARM" 'BEGIN{exit !(m < 50)}' || MISSES+=("${MB} MB warm: ${M_WARM} ms (target < 50 ms)")
done

echo
echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), $(uname -sr), $(df -P "$WORK" | awk 'NR==2{print $1}')"
echo "Load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Reps: $REPS per command and size, interleaved, each after a sync. Wall ms: median and min–max;"
echo "'vs curl': median wall time over curl's; CPU: median user+sys ms; RSS: highest peak over the reps."
echo
echo "| initramfs | command | wall ms | min–max ms | vs curl | CPU ms | peak RSS MB |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
set -- $SIZES
if [ $# -ge 2 ]; then
  a=RSS_IPA_$1 b=RSS_IPA_${!#}
  echo "ipa-oci peak RSS: ${!a} MB at $1 MB, ${!b} MB at ${!#} MB."
  awk -v a="${!a}" -v b="${!b}" 'BEGIN{exit !(b <= a * 1.25 + 5)}' || MISSES+=("peak RSS grows with size: ${!a} MB -> ${!b} MB")
fi
if [ ${#MISSES[@]} -eq 0 ]; then
  echo "Targets met: cold within 1.2x of curl, up-to-date re-check under 50 ms, peak memory flat."
else
  echo "Targets missed:"
  printf -- '- %s\n' "${MISSES[@]}"
  [ "$BENCH_STRICT" = 1 ] && exit 1
fi
exit 0
