#!/usr/bin/env bash
# A/B of tunnelguard builds on one DNS mix: alternating fresh starts, dnsperf closed loop, CPU per
# query split into the main thread's user and system time and the other threads' (GC helpers,
# libuv pool). The box this runs on changes speed from one minute to the next, so the builds
# alternate within each round and the per-round pairs are what to read.
#
# usage: bash bench/dns/ab.sh MIX LABEL=DIST [LABEL=DIST ...] [echo]
#   MIX    hot | blocked | forwarded (the query files of run.sh)
#   DIST   a built dist/ directory inside this checkout, so that node finds the project's
#          node_modules, optionally with node flags for that label after a '+' (`b=DIR+--max-semi-space-size=2`)
#          (e.g. `npm run build && cp -r dist bench/out/dist-a`); `echo` adds the
#          bare Node UDP echo as a reference, `raw` the raw-buffer forwarder (node-fwd-raw)
# env:   ROUNDS=4 LEN=8 NODE_FLAGS="" (extra node flags for the tunnelguard builds)
#        TARGET_CPU=N (lib.sh: every build and the echo on CPU N; unset by default)
# output: one line per run, then the medians per label; raw lines in bench/out/ab-<time>.txt
#        (the order of the labels rotates by one each round)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIX=${1:-}; shift || true
case "$MIX" in hot|blocked|forwarded) ;; *) die "usage: bash bench/dns/ab.sh hot|blocked|forwarded LABEL=DIST... [echo] [raw]" ;; esac
[ $# -gt 0 ] || die "name at least one LABEL=DIST"
for spec in "$@"; do
  [ "$spec" = echo ] || [ "$spec" = raw ] && continue
  [[ "$spec" == *=* ]] || die "\"$spec\": write LABEL=DIST"
  d=${spec#*=}; d=${d%%+*}
  [ -f "$d/cli.js" ] || die "$d/cli.js not found: build it first"
done
ROUNDS=${ROUNDS:-4}; LEN=${LEN:-8}
OUT="$OUTDIR/ab-$(date -u +%Y%m%dT%H%M%SZ).txt"

install_tools
gen_data
start_nsd   # also for blocked: the readiness probe (wait_dns) asks a name that is forwarded
render "$BENCH/conf/tunnelguard.yaml.in" "$RUN/ab-config.yaml" ADDR=$TG_ADDR PORT=$TG_PORT UP_ADDR=$UP_ADDR \
  UP_PORT=$UP_PORT NGROK_LIST="$NGROK_LIST_USED" ADMIN=null

# thread_ticks PID: "main_user main_sys other" in clock ticks
thread_ticks() {
  local t main=0 mu=0 ms=0 other=0 u s
  for t in /proc/"$1"/task/*; do
    read -r u s < <(awk '{sub(/^.*\) /, ""); print $12, $13}' "$t/stat" 2>/dev/null) || continue
    if [ "${t##*/}" = "$1" ]; then mu=$u; ms=$s; else other=$((other + u + s)); fi
  done
  echo "$mu $ms $other"
}

one() { # LABEL DIST|echo ROUND
  local label=$1 dist=$2 round=$3 pid a p r c q mu0 ms0 o0 mu1 ms1 o1 flags=''
  if [[ "$dist" == *+* ]]; then flags=${dist#*+}; dist=${dist%%+*}; fi
  if [ "$dist" = echo ]; then
    a=$ECHO_ADDR; p=$ECHO_PORT
    port_busy $a $p && die "$a:$p is in use"
    start_bg ab "$RUN/ab.out" "${PIN[@]}" node "$BENCH/node/udp-echo.js" $a $p
  elif [ "$dist" = raw ]; then
    a=$FWD_ADDR; p=$FWD_PORT
    port_busy $a $p && die "$a:$p is in use"
    start_bg ab "$RUN/ab.out" "${PIN[@]}" node "$BENCH/node/udp-fwd-raw.js" $a $p $UP_ADDR $UP_PORT
  else
    a=$TG_ADDR; p=$TG_PORT
    port_busy $a $p && die "$a:$p is in use (a tunnelguard left running?)"
    # shellcheck disable=SC2086
    start_bg ab "$TG_STDOUT" "${PIN[@]}" env GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1 \
      node ${NODE_FLAGS:-} $flags "$dist/cli.js" serve --config "$RUN/ab-config.yaml"
  fi
  pid=${BG[ab]}
  wait_dns $a $p 30 "$pid" || { tail -5 "$RUN/ab.err" >&2; stop_bg ab; die "$label did not answer"; }
  # node's start-up (a shell wrapper, when there is one) is not measured: the node process itself is
  pid=$(descendants "$pid" | tail -1)
  [ "$MIX" = hot ] && dnsperf -s $a -p $p -d "$DATA/q-hot.txt" -n 1 -q 100 >/dev/null 2>&1   # fill the cache
  read -r mu0 ms0 o0 < <(thread_ticks "$pid")
  r=$(run_dnsperf "$RUN/ab-dnsperf.out" -s $a -p $p -d "$DATA/q-$MIX.txt" -T 2 -c 8 -q 500 -t 2 -l "$LEN")
  read -r mu1 ms1 o1 < <(thread_ticks "$pid")
  stop_bg ab
  c=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' <<<"$r"); q=$(sed -n 's/^qps=\([0-9.]*\).*/\1/p' <<<"$r")
  [ -n "$c" ] && [ "$c" -gt 0 ] || die "$label: no query completed ($r)"
  awk -v l="$label" -v r="$round" -v m="$MIX" -v q="$q" -v c="$c" -v hz="$HZ" \
    -v mu=$((mu1 - mu0)) -v ms=$((ms1 - ms0)) -v o=$((o1 - o0)) 'BEGIN {
      k = 1e6 / hz / c
      printf "round=%s label=%s mix=%s qps=%.0f us_q=%.2f main_user=%.2f main_sys=%.2f other_threads=%.2f\n", r, l, m, q, (mu+ms+o)*k, mu*k, ms*k, o*k }' | tee -a "$OUT"
}

log "A/B on the $MIX mix: $ROUNDS rounds of: $*"
# the order rotates by one each round (a, b, ref; then b, ref, a; …): with a fixed order, an
# effect of the place in the round (the first run follows the previous round's reference) was
# charged to the same label every round (stop 31 ran each A/B in both orders to see past it)
specs=("$@")
for round in $(seq 1 "$ROUNDS"); do
  for k in $(seq 0 $((${#specs[@]} - 1))); do
    spec=${specs[$(( (k + round - 1) % ${#specs[@]} ))]}
    if [ "$spec" = echo ] || [ "$spec" = raw ]; then one "$spec" "$spec" "$round"; else one "${spec%%=*}" "${spec#*=}" "$round"; fi
  done
done
echo
echo "medians over $ROUNDS rounds ($MIX mix, ${LEN} s closed loop each; raw lines: $OUT):"
awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
       l = v["label"]; n[l]++; Q[l, n[l]] = v["qps"]; U[l, n[l]] = v["us_q"]; MU[l, n[l]] = v["main_user"]
       if (!(l in seen)) { seen[l] = 1; order[++k] = l } }
     function med(A, l, m,   i, j, t, x) { for (i = 1; i <= m; i++) x[i] = A[l, i] + 0
       for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
       return m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2 }
     END { for (i = 1; i <= k; i++) { l = order[i]
       printf "  %-12s qps %8.0f   CPU µs/q %6.2f   main thread user %6.2f\n", l, med(Q, l, n[l]), med(U, l, n[l]), med(MU, l, n[l]) } }' "$OUT"
