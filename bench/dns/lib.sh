# Shared by run.sh and soak.sh: addresses, process handling by PID, CPU and RSS
# accounting from /proc, the dnsperf runner, and one start function per target.
# Everything listens on its own 127.0.53.x address: loopback only.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"   # the project
BENCH="$ROOT/bench/dns"
WORK="${BENCH_WORK:-/tmp/tunnelguard-bench-dns}"            # data, configs, daemon logs
DATA="$WORK/data"
RUN="$WORK/run"
OUTDIR="$ROOT/bench/out"
NGROK_LIST="${NGROK_LIST:-$ROOT/blocklists/ngrok.txt}"
mkdir -p "$DATA" "$RUN" "$OUTDIR"
# BENCH_NICE=-5: run the bench (and everything it starts) at a higher CPU priority than the
# other tenants of the box; less noise, at their expense. Unset by default.
if [ -n "${BENCH_NICE:-}" ]; then renice -n "$BENCH_NICE" -p $$ >/dev/null; fi

UP_ADDR=127.0.53.1;  UP_PORT=${UP_PORT:-25300}        # nsd, authoritative upstream
TG_ADDR=127.0.53.2;  TG_PORT=${TG_PORT:-25301}        # tunnelguard (single process)
DNSDIST_ADDR=127.0.53.3; DNSDIST_PORT=${DNSDIST_PORT:-25302}
DNSMASQ_ADDR=127.0.53.4; DNSMASQ_PORT=${DNSMASQ_PORT:-25303}
UNBOUND_ADDR=127.0.53.5; UNBOUND_PORT=${UNBOUND_PORT:-25304}
ECHO_ADDR=127.0.53.6; ECHO_PORT=${ECHO_PORT:-25305}   # bare Node UDP echo (ceiling)
FWD_ADDR=127.0.53.7;  FWD_PORT=${FWD_PORT:-25306}     # minimal raw-buffer Node forwarder
TGW_ADDR=127.0.53.8;  TGW_PORT=${TGW_PORT:-25307}     # tunnelguard --workers N (when supported)

declare -A ADDR=( [nsd]=$UP_ADDR [tunnelguard]=$TG_ADDR [dnsdist]=$DNSDIST_ADDR [dnsmasq]=$DNSMASQ_ADDR
  [unbound]=$UNBOUND_ADDR [node-echo]=$ECHO_ADDR [node-fwd-raw]=$FWD_ADDR [tunnelguard-workers]=$TGW_ADDR )
declare -A PORT=( [nsd]=$UP_PORT [tunnelguard]=$TG_PORT [dnsdist]=$DNSDIST_PORT [dnsmasq]=$DNSMASQ_PORT
  [unbound]=$UNBOUND_PORT [node-echo]=$ECHO_PORT [node-fwd-raw]=$FWD_PORT [tunnelguard-workers]=$TGW_PORT )

HZ=$(getconf CLK_TCK)
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes: started by start_bg, stopped by their recorded PID (and descendants) ----
declare -A BG=()
descendants() { local c; echo "$1"; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; done; }
start_bg() { # NAME STDOUT_FILE CMD...
  local name=$1 out=$2; shift 2
  "$@" >"$out" 2>"$RUN/$name.err" &
  BG[$name]=$!
}
stop_bg() { # NAME
  local name=$1 pid p pids i alive
  pid=${BG[$name]:-}; [ -n "$pid" ] || return 0
  pids=$(descendants "$pid" | sort -u)
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 50); do
    alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in $pids; do kill -0 "$p" 2>/dev/null && { log "KILL $name pid $p"; kill -KILL "$p" 2>/dev/null; }; done
  wait "$pid" 2>/dev/null
  unset "BG[$name]"
}
stop_all() { local n; for n in "${!BG[@]}"; do stop_bg "$n"; done; }
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

# ---- /proc accounting ----
ticks_of() { # PID... : utime+stime summed (all threads), in clock ticks
  local t=0 p v
  for p in "$@"; do v=$(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat" 2>/dev/null); t=$((t + ${v:-0})); done
  echo $t
}
tree_ticks() { local pid=${BG[$1]:-}; [ -n "$pid" ] && ticks_of $(descendants "$pid") || echo 0; }
tree_rss_kb() { # NAME : VmRSS summed over the process tree
  local pid=${BG[$1]:-} p t=0 v; [ -n "$pid" ] || { echo 0; return; }
  for p in $(descendants "$pid"); do v=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null); t=$((t + ${v:-0})); done
  echo $t
}
box_snap() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9, $8}' /proc/stat; } # busy total softirq

# ---- readiness ----
port_busy() { ss -Hlun "src $1:$2" 2>/dev/null | grep -q .; }
wait_dns() { # ADDR PORT [TIMEOUT_S] [PID]: until it answers anything (any rcode), or PID is gone
  local end=$(( $(date +%s) + ${3:-30} ))
  while [ "$(date +%s)" -lt $end ]; do
    [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null && { log "process $4 exited"; return 1; }
    dig +tries=1 +time=1 -p "$2" @"$1" h0000.example.test A 2>/dev/null | grep -q 'status:' && return 0
    sleep 0.1
  done
  log "no DNS answer from $1:$2"; return 1
}
rcode_of() { dig +tries=1 +time=2 -p "$2" @"$1" "$3" "${4:-A}" 2>/dev/null | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
render() { # TEMPLATE OUT KEY=VAL...
  local in=$1 out=$2 kv args=(); shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
  ! grep -n '@[A-Z_]*@' "$out" >&2 || die "unrendered placeholder in $out"
}

# ---- data and tools ----
install_tools() {
  local need=() c
  for c in dnsperf:dnsperf nsd:nsd dnsdist:dnsdist dnsmasq:dnsmasq-base unbound:unbound dig:bind9-dnsutils ss:iproute2; do
    command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
  done
  [ ${#need[@]} = 0 ] && return 0
  log "apt-get install ${need[*]}"
  # policy-rc.d (containers) keeps the packages' system services from starting; we never use them.
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=600 \
      --no-install-recommends "${need[@]}"; } >"$WORK/apt.log" 2>&1 || die "apt-get failed: see $WORK/apt.log"
}
gen_data() {
  local list=$NGROK_LIST stamp
  if [ ! -s "$list" ]; then
    log "warning: $list missing; using a stand-in list of the ngrok suffixes"
    list="$WORK/ngrok-standin.txt"
    printf '%s\n' ngrok.io ngrok.com ngrok-agent.com ngrok.app ngrok.dev ngrok-free.app ngrok-free.dev ngrok.pizza >"$list"
  fi
  # one copy for the whole run: tunnelguard and the anchors block the same entries even if
  # someone edits the list meanwhile (tunnelguard reloads a list file when it changes)
  NGROK_LIST_USED="$DATA/ngrok.txt"
  cmp -s "$list" "$NGROK_LIST_USED" || cp "$list" "$NGROK_LIST_USED"
  stamp="$(sha1sum "$NGROK_LIST_USED" "$BENCH/gen-data.js" | sha1sum | cut -c1-12)"
  if [ "$(cat "$DATA/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "generating data in $DATA"
    node "$BENCH/gen-data.js" "$DATA" "$NGROK_LIST_USED" >&2 || die "gen-data failed"
    echo "$stamp" >"$DATA/stamp"
  fi
}
build_tunnelguard() {
  [ "${SKIP_BUILD:-0}" = 1 ] && return 0
  log "building tunnelguard (npm run build)"
  # tsc emits even with type errors elsewhere in the tree (files still being written): warn, go on
  (cd "$ROOT" && npm run build --silent) >"$WORK/build.log" 2>&1 || log "warning: npm run build reported errors (see $WORK/build.log)"
  [ -f "$ROOT/dist/cli.js" ]
}

# ---- targets ----
start_nsd() {
  local d="$RUN/nsd"; mkdir -p "$d"
  port_busy $UP_ADDR $UP_PORT && die "$UP_ADDR:$UP_PORT is in use"
  render "$BENCH/conf/nsd.conf.in" "$d/nsd.conf" UP_ADDR=$UP_ADDR UP_PORT=$UP_PORT DIR="$d" DATA="$DATA"
  nsd-checkconf "$d/nsd.conf" || die "nsd config invalid"
  start_bg nsd "$RUN/nsd.out" nsd -d -c "$d/nsd.conf"
  wait_dns $UP_ADDR $UP_PORT || die "nsd did not start (see $d/nsd.log)"
  [ "$(rcode_of $UP_ADDR $UP_PORT u1.example.test)" = NOERROR ] || die "nsd does not serve the wildcard"
}
TG_STDOUT="${TG_STDOUT:-/dev/null}"   # tunnelguard's decision log (one JSON line per blocked query)
# TARGET_CPU=N runs every measured target on CPU N (off by default; dnsperf and nsd are never
# pinned). On this VM one vCPU is often much slower than the other: the same tunnelguard build
# cost 21-22 µs per blocked query on CPU 1 in three starts, and 40-46 in two of three on CPU 0.
# Unpinned, each fresh start lands on either and mostly stays there, so rounds can split into two
# speeds. Pinning does not make the hour steady, though, and it keeps a target's helper threads
# (V8's GC, libuv's pool, dnsdist's workers) on its one CPU: see bench/README.md.
TARGET_CPU=${TARGET_CPU-}
PIN=()
if [ -n "$TARGET_CPU" ] && [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then PIN=(taskset -c "$TARGET_CPU"); fi
start_target() { # NAME
  local t=$1 a=${ADDR[$1]} p=${PORT[$1]} d="$RUN/$1"; mkdir -p "$d"
  port_busy "$a" "$p" && { log "$a:$p is in use"; return 1; }
  case $t in
    tunnelguard|tunnelguard-workers)
      render "$BENCH/conf/tunnelguard.yaml.in" "$d/config.yaml" ADDR="$a" PORT="$p" UP_ADDR=$UP_ADDR UP_PORT=$UP_PORT \
        NGROK_LIST="$NGROK_LIST_USED" ADMIN="${TG_ADMIN:-null}"
      local extra=() pin=("${PIN[@]}"); [ "$t" = tunnelguard-workers ] && { extra=(--workers "${TG_WORKERS:-2}"); pin=(); }
      start_bg "$t" "$TG_STDOUT" "${pin[@]}" env GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1 node "$ROOT/dist/cli.js" serve --config "$d/config.yaml" "${extra[@]}" ;;
    dnsdist)
      render "$BENCH/conf/dnsdist.lua.in" "$d/dnsdist.lua" ADDR="$a" PORT="$p" UP_ADDR=$UP_ADDR UP_PORT=$UP_PORT DATA="$DATA"
      start_bg "$t" "$RUN/$t.out" "${PIN[@]}" dnsdist --supervised --disable-syslog -C "$d/dnsdist.lua" ;;
    dnsmasq)
      render "$BENCH/conf/dnsmasq.conf.in" "$d/dnsmasq.conf" ADDR="$a" PORT="$p" UP_ADDR=$UP_ADDR UP_PORT=$UP_PORT DIR="$d" DATA="$DATA"
      start_bg "$t" "$RUN/$t.out" "${PIN[@]}" dnsmasq -k -C "$d/dnsmasq.conf" --log-facility=- ;;
    unbound)
      render "$BENCH/conf/unbound.conf.in" "$d/unbound.conf" ADDR="$a" PORT="$p" UP_ADDR=$UP_ADDR UP_PORT=$UP_PORT DIR="$d" DATA="$DATA"
      start_bg "$t" "$RUN/$t.out" "${PIN[@]}" unbound -d -c "$d/unbound.conf" ;;
    node-echo) start_bg "$t" "$RUN/$t.out" "${PIN[@]}" node "$BENCH/node/udp-echo.js" "$a" "$p" ;;
    node-fwd-raw) start_bg "$t" "$RUN/$t.out" "${PIN[@]}" node "$BENCH/node/udp-fwd-raw.js" "$a" "$p" $UP_ADDR $UP_PORT ;;
    *) log "unknown target $t"; return 1 ;;
  esac
  wait_dns "$a" "$p" 30 "${BG[$t]}" || { log "$t did not answer; stderr:"; tail -5 "$RUN/$t.err" >&2; stop_bg "$t"; return 1; }
}

# run_dnsperf OUTFILE ARGS... : prints "qps= sent= completed= lost= lat_ms= lat_sd_ms= gen_ticks= rcodes="
# dnsperf's own CPU comes from the cutime/cstime of the shell that waited for it.
run_dnsperf() {
  local out=$1; shift
  bash -c 'dnsperf "$@" >"$0" 2>&1; awk "{sub(/^.*\\) /,\"\"); print \"GENTICKS\", \$14+\$15}" /proc/$$/stat >>"$0"' "$out" "$@"
  awk '/Queries sent:/{s=$3} /Queries completed:/{c=$3} /Queries lost:/{l=$3} /Queries per second:/{q=$4}
       /Average Latency/{lat=$4*1000} /Latency StdDev/{sd=$4*1000} /^GENTICKS/{g=$2}
       /Response codes:/{sub(/.*Response codes: */,""); gsub(/ /,""); rc=$0}
       END{printf "qps=%s sent=%s completed=%s lost=%s lat_ms=%.3f lat_sd_ms=%.3f gen_ticks=%s rcodes=%s\n", q, s, c, l, lat, sd, g, rc}' "$out"
}
