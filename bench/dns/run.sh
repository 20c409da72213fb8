#!/usr/bin/env bash
# DNS benchmark: tunnelguard against dnsdist, dnsmasq and unbound (caches on, the ngrok list
# blocked, all in front of the same nsd on loopback), a bare Node UDP echo (the platform
# ceiling) and a minimal raw-buffer Node forwarder (the forwarding floor), in one run.
#
#   bash bench/dns/run.sh            # ~10 min (13 with --workers); tables printed and written to bench/out/
#
# For every (round, mix, target) the target is started fresh (empty cache) and measured twice:
#   sat: closed loop, dnsperf $DNSPERF_OPTS -l $SAT_LEN          -> qps, CPU µs per query
#   lat: restarted, fixed load dnsperf -Q $LAT_QPS -l $LAT_LEN -v -> mean/p50/p99 latency
# Mixes: forwarded (unique names: every query a cache miss), hot (1000 names, warmed by one
# pass first), blocked (names under the entries of blocklists/ngrok.txt). The echo answers
# without looking at the name, so it is measured once per round (hot) as the ceiling for all mixes;
# the raw forwarder is measured on the forwarded mix.
# Knobs (env): ROUNDS=2 SAT_LEN=10 LAT_LEN=5 LAT_QPS=10000 DNSPERF_OPTS="-T 2 -c 8 -q 500 -t 2"
#   PLAN="mix:target ..." TG_WORKERS=2 (adds tunnelguard --workers N when the CLI has it)
#   TG_STDOUT=/dev/null (tunnelguard's decision log) SKIP_BUILD=1 BENCH_WORK=/tmp/...
#   TARGET_CPU=N (lib.sh: every measured target on CPU N; unset by default)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-2}
SAT_LEN=${SAT_LEN:-10}
LAT_LEN=${LAT_LEN:-5}
LAT_QPS=${LAT_QPS:-10000}
DNSPERF_OPTS=${DNSPERF_OPTS:--T 2 -c 8 -q 500 -t 2}
declare -A QFILE=( [forwarded]=$DATA/q-forwarded.txt [hot]=$DATA/q-hot.txt [blocked]=$DATA/q-blocked.txt )

install_tools
gen_data
TG_OK=1
build_tunnelguard || TG_OK=0
[ -f "$ROOT/dist/cli.js" ] || TG_OK=0
WORKERS=0
if [ $TG_OK = 1 ] && grep -q -- 'workers' "$ROOT/dist/cli.js" 2>/dev/null; then WORKERS=1; fi

DEFAULT_PLAN="forwarded:tunnelguard forwarded:dnsdist forwarded:dnsmasq forwarded:unbound forwarded:node-fwd-raw
 hot:tunnelguard hot:dnsdist hot:dnsmasq hot:unbound hot:node-echo
 blocked:tunnelguard blocked:dnsdist blocked:dnsmasq blocked:unbound"
if [ $WORKERS = 1 ]; then
  DEFAULT_PLAN+=" forwarded:tunnelguard-workers hot:tunnelguard-workers blocked:tunnelguard-workers"
fi
PLAN=${PLAN:-$DEFAULT_PLAN}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$OUTDIR/dns-runs-$STAMP.txt"
MD="$OUTDIR/dns-$STAMP.md"
{
  echo "# date=$(date -u -Is) host=$(hostname) cpus=$(nproc) kernel=$(uname -r) node=$(node -v)"
  echo "# commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +uncommitted-src) list=$NGROK_LIST sha1=$(sha1sum "$NGROK_LIST_USED" | cut -c1-10) entries=$(wc -l <"$DATA/block-suffixes.txt")"
  echo "# versions: $(dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -1 | sed 's/^/dnsperf /'), $(dnsdist --version 2>/dev/null | head -1 | cut -d' ' -f1-2)," \
    "unbound $(unbound -V 2>/dev/null | sed -n 's/^Version //p'), $(nsd -v 2>&1 | head -1), $(dnsmasq -v | head -1 | cut -d' ' -f1-3)"
  echo "# opts=\"$DNSPERF_OPTS\" sat_len=$SAT_LEN lat_len=$LAT_LEN lat_qps=$LAT_QPS rounds=$ROUNDS tg_stdout=$TG_STDOUT target_cpu=${TARGET_CPU:-none} loadavg_start=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
} >"$RAW"

start_nsd

# measure KIND ROUND MIX TARGET: one fresh start, one dnsperf run, one key=value line in $RAW
measure() {
  local kind=$1 round=$2 mix=$3 t=$4 a=${ADDR[$4]} p=${PORT[$4]} args s0 s1 c0 c1 n0 n1 ns r rss extra=""
  if ! start_target "$t"; then
    echo "round=$round kind=$kind mix=$mix target=$t status=failed" | tee -a "$RAW"; return 0
  fi
  if [ "$mix" = hot ]; then   # one pass over the hot set: the cache is warm, as in production
    dnsperf -s "$a" -p "$p" -d "$DATA/q-hot.txt" -n 1 -q 100 -t 2 >/dev/null 2>&1
  fi
  args=(-s "$a" -p "$p" -d "${QFILE[$mix]}" $DNSPERF_OPTS)
  if [ "$kind" = sat ]; then args+=(-l "$SAT_LEN"); else args+=(-l "$LAT_LEN" -Q "$LAT_QPS" -v); fi
  c0=$(tree_ticks "$t"); n0=$(tree_ticks nsd); s0=$(box_snap); ns=$(date +%s%N)
  r=$(run_dnsperf "$RUN/dnsperf.out" "${args[@]}")
  ns=$(( $(date +%s%N) - ns )); c1=$(tree_ticks "$t"); n1=$(tree_ticks nsd); s1=$(box_snap)
  rss=$(tree_rss_kb "$t")
  if [ "$kind" = lat ]; then   # per-response latencies from -v lines "> RCODE name type seconds"
    extra=$(awk '/^> /{print $NF*1000}' "$RUN/dnsperf.out" | sort -g | awk '{v[NR]=$1} END{
      if (NR==0) {print "p50_ms=NA p99_ms=NA p999_ms=NA"; exit}
      printf "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f", v[int(NR*0.5)+1], v[int(NR*0.99)+1], v[int(NR*0.999)+1]}')
  fi
  stop_bg "$t"
  read -r b0 t0 q0 <<<"$s0"; read -r b1 t1 q1 <<<"$s1"
  echo "round=$round kind=$kind mix=$mix target=$t status=ok $r $extra target_ticks=$((c1-c0)) nsd_ticks=$((n1-n0))" \
    "box_busy_ticks=$((b1-b0)) box_total_ticks=$((t1-t0)) softirq_ticks=$((q1-q0)) wall_ns=$ns hz=$HZ rss_kb=$rss" | tee -a "$RAW"
}

if [ $TG_OK = 0 ]; then log "tunnelguard is not buildable/startable now: its rows will say so"; fi
log "plan: $ROUNDS round(s) of: $PLAN"
for round in $(seq 1 "$ROUNDS"); do
  order=$PLAN   # even rounds run the plan backwards, so a slow drift in the box's load hits every target alike
  [ $((round % 2)) = 0 ] && order=$(printf '%s\n' $PLAN | tac)
  for item in $order; do
    mix=${item%%:*}; t=${item#*:}
    if [[ $t == tunnelguard* ]] && [ $TG_OK = 0 ]; then
      echo "round=$round kind=sat mix=$mix target=$t status=failed" >>"$RAW"; continue
    fi
    measure sat "$round" "$mix" "$t"
    measure lat "$round" "$mix" "$t"
  done
done
stop_all
echo "# loadavg_end=\"$(cut -d' ' -f1-3 /proc/loadavg)\" end=$(date -u -Is)" >>"$RAW"
node "$BENCH/summarize.js" "$RAW" | tee "$MD"
log "raw: $RAW"
log "table: $MD"
