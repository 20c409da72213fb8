#!/usr/bin/env bash
# Proxy bench: CONNECT setups/s and bulk MiB/s through one tunnel, side by side in one run:
# tunnelguard, squid, tinyproxy, a plain Node pipe proxy, and a direct connection (ceiling).
# Loopback only. Every proxy is started fresh for every measurement and stopped by its PID.
#
# usage: bash bench/proxy/run.sh        (from anywhere; ~10-25 min with the defaults, depending on how busy the box is)
# env:   ROUNDS=3 CONC=32 DUR=8 BULK=1073741824 TARGETS="direct tunnelguard squid tinyproxy node-pipe"
#        TESTS="setup-hello setup-tls bulk-down bulk-up" TG_LOG_LEVEL=warn NO_BUILD=1 WORK=/tmp/tunnelguard-bench
#        TARGET_CPU=N (targets.sh: every proxy on CPU N; unset by default)
#        TG_NODE_FLAGS="--trace-gc" (node flags for tunnelguard; its output goes to $WORK/.../tunnelguard.log)
#        TG_DIST=DIR (a build other than dist/, e.g. bench/out/dist-NAME)
#        QUIET_MAX=60 QUIET_WAIT=15: before each measurement wait until the shared box is at most
#        60 % busy (of 200) for a second, at most 15 s (busy_before= in the raw line)
#        TW_MAX=2000 TW_WAIT=75: before each setup measurement wait until at most 2000 TCP sockets are in
#        TIME_WAIT (the run before left ~20,000), at most 75 s (time_wait_before= in the raw line)
# output: raw lines in bench/out/proxy/run-<UTC time>.txt, then a markdown summary on stdout
#         (also bench/out/proxy/run-<UTC time>.md).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$HERE/targets.sh"

ROUNDS=${ROUNDS:-3}; CONC=${CONC:-32}; DUR=${DUR:-8}; BULK=${BULK:-1073741824}
TARGETS=${TARGETS:-"direct tunnelguard squid tinyproxy node-pipe"}
TESTS=${TESTS:-"setup-hello setup-tls bulk-down bulk-up"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/out/proxy/run-$STAMP.txt}
declare -A TPORT=( [setup-hello]=$HELLO_PORT [setup-tls]=$TLS_PORT [bulk-down]=$APP_PORT [bulk-up]=$APP_PORT )

install_tools || exit 1
TG_OK=0
if [[ " $TARGETS " == *" tunnelguard "* ]]; then
  build_tunnelguard && TG_OK=1 || say "tunnelguard: not buildable yet, left out of this run"
fi
[ $TG_OK = 1 ] || TARGETS=$(echo " $TARGETS " | sed 's/ tunnelguard / /')
TARGETS=$(echo $TARGETS)
start_origin || exit 1

declare -A FAILED=()
pct() { awk -v d="$1" -v hz="$HZ" -v ns="$2" 'BEGIN{printf "%.0f", 100*d/hz/(ns/1e9)}'; }

# measure TARGET TEST ROUND: one fresh proxy, one client run, one raw line
measure() {
  local t=$1 test=$2 round=$3 proxy p0=0 o0 o1 p1=0 s0 s1 t0 t1 r cli extra="" rss=0 hwm=0 args
  proxy=$(proxy_addr "$t")
  case $test in
    setup-hello) args=(setup --kind hello --conc "$CONC" --dur "$DUR") ;;
    setup-tls)   args=(setup --kind tls --conc "$CONC" --dur "$DUR") ;;
    bulk-down)   args=(bulk --dir down --bytes "$BULK") ;;
    bulk-up)     args=(bulk --dir up --bytes "$BULK") ;;
  esac
  [ -n "${FAILED[$t]:-}" ] && return 0
  local tw=NA; case $test in setup-*) tw=$(tw_gate) || say "still ${tw} sockets in TIME_WAIT after ${TW_WAIT:-75} s: measuring anyway" ;; esac
  local quiet; quiet=$(quiet_gate) || say "box still busy (${quiet}%) after ${QUIET_WAIT:-15} s: measuring anyway"
  if ! start_proxy "$t"; then
    say "start $t failed: left out of the rest of this run (log: $RUN/$t.log)"
    echo "round=$round target=$t test=$test error=\"start failed: $(tail -c 200 "$RUN/$t.log" 2>/dev/null | tr -s '\n\"' '  ')\"" | tee -a "$OUT"
    FAILED[$t]=1; stop_proxy "$t"; return 0
  fi
  [ "$t" = direct ] || p0=$(cpu_ticks "$t")
  o0=$(cpu_ticks origin); s0=$(stat_snap); t0=$(date +%s%N)
  r=$(/usr/bin/time -f 'CLICPU %U %S' node "$HERE/load.mjs" "${args[@]}" --proxy "$proxy" --target $H:${TPORT[$test]} --sni origin.test 2>&1) || true
  t1=$(date +%s%N); s1=$(stat_snap); o1=$(cpu_ticks origin)
  if [ "$t" != direct ]; then
    p1=$(cpu_ticks "$t"); rss=$(mem_kb "$t" VmRSS); hwm=$(mem_kb "$t" VmHWM)
    extra=" cpu_proxy=$(pct $((p1-p0)) $((t1-t0))) cpu_proxy_s=$(awk -v d=$((p1-p0)) -v hz=$HZ 'BEGIN{printf "%.2f", d/hz}') rss_MiB=$((rss/1024)) hwm_MiB=$((hwm/1024))"
  fi
  cli=$(echo "$r" | awk '/^CLICPU/{print $2+$3}')
  r=$(echo "$r" | grep -v '^CLICPU' | tail -1)
  echo "round=$round target=$t test=$test $r$extra cpu_client=$(awk -v c="${cli:-0}" -v ns=$((t1-t0)) 'BEGIN{printf "%.0f", 100*c/(ns/1e9)}') cpu_origin=$(pct $((o1-o0)) $((t1-t0))) box_busy=$(box_pct "$s0" "$s1") busy_before=$quiet time_wait_before=$tw wall_s=$(awk -v ns=$((t1-t0)) 'BEGIN{printf "%.2f", ns/1e9}')" | tee -a "$OUT"
  stop_proxy "$t"
  if [ "$t" = tunnelguard ] && [ -s "$RUN/tunnelguard.log" ]; then
    echo "#   tunnelguard log lines: $(wc -l <"$RUN/tunnelguard.log"); first: $(head -c 300 "$RUN/tunnelguard.log" | head -1)" >>"$OUT"
  fi
  sleep 0.5
}

{
  echo "# proxy bench $STAMP rounds=$ROUNDS conc=$CONC dur=$DUR bulk=$BULK targets=\"$TARGETS\" tests=\"$TESTS\" tg_log_level=$TG_LOG_LEVEL target_cpu=${TARGET_CPU:-none}"
  echo "# versions: node $(node --version) / $(squid -v | head -1) / $(tinyproxy -v) / $(openssl version | cut -d' ' -f1-2) / $(nproc) cpu / load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ $TG_OK = 1 ] && echo "# tunnelguard: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted src changes)') built $(date -u -r "$ROOT/dist/cli.js" +%H:%M:%SZ)"
} | tee -a "$OUT"

read -ra T <<<"$TARGETS"
for round in $(seq 1 "$ROUNDS"); do
  # rotate the target order every round so no target always runs first or last
  n=${#T[@]}; k=$(( (round - 1) % n ))
  order=("${T[@]:k}" "${T[@]:0:k}")
  for test in $TESTS; do
    for t in "${order[@]}"; do measure "$t" "$test" "$round"; done
  done
done
echo "# end $(date -u +%H:%M:%SZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
bg_stop_all
node "$HERE/summarize.mjs" "$OUT" | tee "${OUT%.txt}.md"
say "raw: $OUT"
