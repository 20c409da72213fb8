#!/usr/bin/env bash
# Memory flatness: tunnelguard (or $SOAK_TARGET) under a fixed load for 5 minutes, its RSS sampled every 10 s.
#
#   bash bench/dns/soak.sh      # ~5.5 min; table printed and written to bench/out/dns-soak-STAMP.md
#
# Load: dnsperf -Q $SOAK_QPS (10k) for $SOAK_LEN (300 s) over q-soak.txt: 60 % unique names
# (cache misses that fill the cache to dns.cache.maxEntries and then evict), 30 % hot names,
# 10 % names under the ngrok list (blocked, one decision log line each). tunnelguard is the
# same single process and config as in run.sh; its stdout (decision log) goes to $TG_STDOUT.
# Knobs (env): SOAK_QPS=10000 SOAK_LEN=300 SOAK_EVERY=10 TG_STDOUT=/dev/null SKIP_BUILD=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOAK_QPS=${SOAK_QPS:-10000}
SOAK_LEN=${SOAK_LEN:-300}
SOAK_EVERY=${SOAK_EVERY:-10}
T=${SOAK_TARGET:-tunnelguard}   # any run.sh target, e.g. unbound, to compare

install_tools
gen_data
if [[ $T == tunnelguard* ]]; then build_tunnelguard || die "tunnelguard does not build (dist/cli.js missing)"; fi
start_nsd
start_target "$T" || die "$T did not start: see $RUN/$T.err"
PID=${BG[$T]}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$OUTDIR/dns-soak-$STAMP.txt"
MD="$OUTDIR/dns-soak-$STAMP.md"
log "soak: $SOAK_QPS qps for $SOAK_LEN s against $T pid $PID; RSS every $SOAK_EVERY s"
echo "# date=$(date -u -Is) node=$(node -v) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) target=$T qps=$SOAK_QPS len=$SOAK_LEN" >"$RAW"

c0=$(tree_ticks "$T")
start_bg dnsperf "$RUN/soak-dnsperf.out" dnsperf -s "${ADDR[$T]}" -p "${PORT[$T]}" -d "$DATA/q-soak.txt" \
  -T 2 -c 8 -q 500 -t 2 -Q "$SOAK_QPS" -l "$SOAK_LEN" -S "$SOAK_EVERY"
t0=$(date +%s)
echo "t_s=0 rss_kb=$(tree_rss_kb "$T") cpu_ticks=0" | tee -a "$RAW"
for ((next = SOAK_EVERY; next <= SOAK_LEN; next += SOAK_EVERY)); do
  left=$(( t0 + next - $(date +%s) )); [ $left -gt 0 ] && sleep $left
  kill -0 "$PID" 2>/dev/null || die "$T exited during the soak (see $RUN/$T.err)"
  echo "t_s=$next rss_kb=$(tree_rss_kb "$T") cpu_ticks=$(( $(tree_ticks "$T") - c0 ))" | tee -a "$RAW"
  kill -0 "${BG[dnsperf]}" 2>/dev/null || break
done
wait "${BG[dnsperf]}" 2>/dev/null; unset "BG[dnsperf]"
c1=$(tree_ticks "$T")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status" 2>/dev/null)
stop_all
completed=$(awk '/Queries completed:/{print $3}' "$RUN/soak-dnsperf.out")
lost=$(awk '/Queries lost:/{print $3}' "$RUN/soak-dnsperf.out")
rcodes=$(sed -n 's/.*Response codes: *//p' "$RUN/soak-dnsperf.out" | tr -d ' ')
lat=$(awk '/Average Latency/{printf "%.3f", $4*1000}' "$RUN/soak-dnsperf.out")
echo "# completed=$completed lost=$lost rcodes=$rcodes lat_ms=$lat hwm_kb=$hwm cpu_ticks=$((c1 - c0)) hz=$HZ" >>"$RAW"

awk -v completed="${completed:-0}" -v lost="${lost:-0}" -v rcodes="$rcodes" -v lat="$lat" -v hwm="${hwm:-0}" \
    -v ticks=$((c1 - c0)) -v hz="$HZ" -v qps="$SOAK_QPS" -v len="$SOAK_LEN" -v raw="$RAW" -v target="$T" '
  BEGIN { n = 0; k = 0 }
  /^t_s=/ { split($1, a, "="); split($2, b, "="); t[n] = a[2]; r[n] = b[2] / 1024; n++ }
  END {
    print "## DNS memory soak: " target " at a fixed " qps " qps for " len " s"; print ""
    print "| t (s) | RSS MiB |"; print "|---:|---:|"
    for (i = 0; i < n; i++) printf "| %d | %.1f |\n", t[i], r[i]
    # least-squares slope over the samples after the first minute (cache filling, JIT warm-up)
    for (i = 0; i < n; i++) if (t[i] >= (len >= 120 ? 60 : 0)) { k++; sx += t[i]; sy += r[i]; sxx += t[i]*t[i]; sxy += t[i]*r[i]
      if (!f) { f = 1; first = r[i] } ; last = r[i]; if (r[i] > mx) mx = r[i]; if (!mn || r[i] < mn) mn = r[i] }
    slope = (k > 1) ? (k*sxy - sx*sy) / (k*sxx - sx*sx) * 60 : 0
    print ""
    printf "- After the warm-up (first minute): RSS %.1f → %.1f MiB (min %.1f, max %.1f); trend %+.2f MiB/min (least squares).\n", first, last, mn, mx, slope
    printf "- Peak RSS (VmHWM): %.1f MiB. Queries completed %d, lost %d; rcodes %s; mean latency %s ms.\n", hwm/1024, completed, lost, rcodes, lat
    if (completed > 0) printf "- CPU: %.1f µs per query over the soak.\n", ticks / hz * 1e6 / completed
    printf "- Verdict: %s (flat = the trend after the first minute is under 1 MiB/min and the range under 10 %% of the minimum).\n",
      (slope < 1 && (mx - mn) < 0.1 * mn) ? "flat" : "**not flat**"
    print "- Raw samples: " raw
  }' "$RAW" | tee "$MD"
log "table: $MD"
