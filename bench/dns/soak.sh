#!/usr/bin/env bash
# Memory flatness: tunnelguard (or $SOAK_TARGET) under a fixed load for 5 minutes, its RSS
# sampled every 10 s (and, for tunnelguard, V8 heap figures from its /metrics).
#
#   bash bench/dns/soak.sh      # ~6 min; table printed and written to bench/out/dns-soak-STAMP.md
#
# Load: dnsperf -Q $SOAK_QPS (10k) for $SOAK_LEN (300 s) over q-soak.txt: 60 % unique names
# (cache misses that fill the cache to dns.cache.maxEntries and then evict), 30 % hot names,
# 10 % names under the ngrok list (blocked, one decision log line each). tunnelguard is the
# same single process and config as in run.sh, plus an admin listener on loopback for /metrics;
# its stdout (decision log) goes to $TG_STDOUT.
# Knobs (env): SOAK_QPS=10000 SOAK_LEN=300 SOAK_EVERY=10 SOAK_TARGET=tunnelguard TG_STDOUT=/dev/null SKIP_BUILD=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOAK_QPS=${SOAK_QPS:-10000}
SOAK_LEN=${SOAK_LEN:-300}
SOAK_EVERY=${SOAK_EVERY:-10}
T=${SOAK_TARGET:-tunnelguard}   # any run.sh target, e.g. unbound, to compare
ADMIN_ADDR=127.0.53.2:${ADMIN_PORT:-25309}

install_tools
gen_data
if [[ $T == tunnelguard* ]]; then
  build_tunnelguard || die "tunnelguard does not build (dist/cli.js missing)"
  TG_ADMIN="\"$ADMIN_ADDR\""
fi
start_nsd
start_target "$T" || die "$T did not start: see $RUN/$T.err"
PID=${BG[$T]}

# heap figures (KiB) from tunnelguard's Prometheus endpoint; "-" for the other targets
heap() {
  [[ $T == tunnelguard* ]] || { echo "heap_used_kb=- heap_total_kb=- external_kb=-"; return; }
  curl -s --max-time 2 "http://$ADMIN_ADDR/metrics" | awk '
    /^nodejs_heap_size_used_bytes /{u=$2} /^nodejs_heap_size_total_bytes /{t=$2} /^nodejs_external_memory_bytes /{e=$2}
    END{ if (u == "") print "heap_used_kb=- heap_total_kb=- external_kb=-"
         else printf "heap_used_kb=%d heap_total_kb=%d external_kb=%d\n", u/1024, t/1024, e/1024 }'
}
sample() { echo "t_s=$1 rss_kb=$(tree_rss_kb "$T") $(heap) cpu_ticks=$(( $(tree_ticks "$T") - c0 ))" | tee -a "$RAW"; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$OUTDIR/dns-soak-$STAMP.txt"
MD="$OUTDIR/dns-soak-$STAMP.md"
log "soak: $SOAK_QPS qps for $SOAK_LEN s against $T pid $PID; RSS every $SOAK_EVERY s"
echo "# date=$(date -u -Is) node=$(node -v) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +uncommitted-src) target=$T qps=$SOAK_QPS len=$SOAK_LEN loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >"$RAW"

c0=$(tree_ticks "$T")
start_bg dnsperf "$RUN/soak-dnsperf.out" dnsperf -s "${ADDR[$T]}" -p "${PORT[$T]}" -d "$DATA/q-soak.txt" \
  -T 2 -c 8 -q 500 -t 2 -Q "$SOAK_QPS" -l "$SOAK_LEN"
t0=$(date +%s)
sample 0
for ((next = SOAK_EVERY; next <= SOAK_LEN; next += SOAK_EVERY)); do
  left=$(( t0 + next - $(date +%s) )); [ $left -gt 0 ] && sleep $left
  kill -0 "$PID" 2>/dev/null || die "$T exited during the soak (see $RUN/$T.err)"
  sample $next
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
echo "# completed=$completed lost=$lost rcodes=$rcodes lat_ms=$lat hwm_kb=$hwm cpu_ticks=$((c1 - c0)) hz=$HZ loadavg_end=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$RAW"

awk -v completed="${completed:-0}" -v lost="${lost:-0}" -v rcodes="$rcodes" -v lat="$lat" -v hwm="${hwm:-0}" \
    -v ticks=$((c1 - c0)) -v hz="$HZ" -v qps="$SOAK_QPS" -v len="$SOAK_LEN" -v raw="$RAW" -v target="$T" '
  function kv(s,   a) { split(s, a, "="); return a[2] }
  function mib(x) { return x == "-" ? "–" : sprintf("%.1f", x / 1024) }
  # the median RSS of the samples with lo <= t < hi (lo < t <= hi when upper is set)
  function median_of(lo, hi, upper,   i, j, m, v, tmp) {
    m = 0
    for (i = 0; i < n; i++) if (upper ? (t[i] > lo && t[i] <= hi) : (t[i] >= lo && t[i] < hi)) v[++m] = r[i]
    for (i = 2; i <= m; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { tmp = v[j]; v[j] = v[j-1]; v[j-1] = tmp }
    return m == 0 ? 0 : (m % 2 ? v[(m+1)/2] : (v[m/2] + v[m/2+1]) / 2)
  }
  BEGIN { n = 0; k = 0; warm = (len >= 120) ? 60 : 0 }
  /^t_s=/ { t[n] = kv($1); r[n] = kv($2) / 1024; hu[n] = kv($3); ht[n] = kv($4); ex[n] = kv($5); n++ }
  END {
    print "## DNS memory soak: " target " at a fixed " qps " qps for " len " s"; print ""
    print "| t (s) | RSS MiB | V8 heap used MiB | V8 heap total MiB | external MiB |"; print "|---:|---:|---:|---:|---:|"
    for (i = 0; i < n; i++) printf "| %d | %.1f | %s | %s | %s |\n", t[i], r[i], mib(hu[i]), mib(ht[i]), mib(ex[i])
    # after the warm-up (cache filling, JIT, heap sizing): least-squares trend, and the mean of the
    # last minute against the mean of the first minute after the warm-up (GC makes RSS saw-tooth)
    for (i = 0; i < n; i++) if (t[i] >= warm) { k++; sx += t[i]; sy += r[i]; sxx += t[i]*t[i]; sxy += t[i]*r[i]
      if (k == 1) { mn = r[i]; mx = r[i] }; if (r[i] > mx) mx = r[i]; if (r[i] < mn) mn = r[i]
      if (t[i] < warm + 60) { a += r[i]; na++ }; if (t[i] > t[n-1] - 60) { b += r[i]; nb++ } }
    slope = (k > 1) ? (k*sxy - sx*sy) / (k*sxx - sx*sx) * 60 : 0
    growth = (na && nb) ? (b/nb - a/na) / (a/na) : 0
    # the medians of the same two minutes: a collection that falls due in one of them lifts two or
    # three of its six samples by 20-50 MiB, and the mean with them, while the live heap stays level
    ma = median_of(warm, warm + 60, 0); mb = median_of(t[n-1] - 60, t[n-1], 1)
    mgrowth = (ma > 0) ? (mb - ma) / ma : 0
    print ""
    printf "- RSS from %d s on: min %.1f, max %.1f MiB; mean of the first minute %.1f → mean of the last minute %.1f MiB (%+.1f %%); trend %+.2f MiB/min.\n", warm, mn, mx, a/na, b/nb, 100*growth, slope
    printf "- RSS median of the first minute %.1f → of the last minute %.1f MiB (%+.1f %%).\n", ma, mb, 100*mgrowth
    printf "- Peak RSS (VmHWM): %.1f MiB. Queries completed %d (%.0f qps), lost %d; rcodes %s; mean latency %s ms.\n", hwm/1024, completed, completed/len, lost, rcodes, lat
    # the live set: the lowest V8 heap-used sample of each minute (just after a collection), which a
    # leak would raise minute by minute even where the saw-tooth of RSS hides it
    # minutes of whole samples: the last sample (at the end, a multiple of 60 s) closes the last minute
    last = int((t[n-1] - warm) / 60); if (last > 0 && last * 60 == t[n-1] - warm) last--
    for (i = 0; i < n; i++) if (t[i] >= warm && hu[i] != "-") { m = int((t[i] - warm) / 60); if (m > last) m = last
      if (!(m in fl) || hu[i] + 0 < fl[m]) fl[m] = hu[i] + 0; if (m > mmax) mmax = m }
    if (length(fl) > 0) { line = ""; for (m = 0; m <= mmax; m++) if (m in fl) line = line (line == "" ? "" : ", ") sprintf("%.1f", fl[m] / 1024)
      printf "- V8 heap used, the lowest sample of each minute from %d s on (the live set after a collection): %s MiB.\n", warm, line }
    if (completed > 0) printf "- CPU: %.1f µs per query over the soak.\n", ticks / hz * 1e6 / completed
    printf "- Verdict: %s (flat = the last minute\x27s median RSS within 5 %% of the first minute\x27s after the warm-up).\n",
      (len < 180) ? "too short to judge (SOAK_LEN < 180)" : (mgrowth < 0.05) ? "flat" : "**not flat**"
    print "- Raw samples: " raw
  }' "$RAW" | tee "$MD"
log "table: $MD"
