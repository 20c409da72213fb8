#!/usr/bin/env bash
# Soak: hold 200 tunnels through tunnelguard with light traffic (128 B echoed per tunnel
# per second) plus a light churn of short ClientHello tunnels (10/s), for 5 minutes, and
# sample the proxy's RSS every 10 s. Memory must stay flat: the script reports the RSS
# growth from the 1-minute sample (WARMUP) to the end and a least-squares slope over that span.
# usage: bash bench/proxy/soak.sh
# env:   SOAK_TARGET=tunnelguard (or squid, tinyproxy, node-pipe to check the soak itself)
#        TUNNELS=200 SOAK_DUR=300 EVERY_MS=1000 PAYLOAD=128 CHURN=10 SAMPLE=10 MAX_GROWTH_MIB=10
# output: bench/out/proxy/soak-<target>-<UTC time>.txt (one line per sample + a verdict line)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$HERE/targets.sh"

T=${SOAK_TARGET:-tunnelguard}
TUNNELS=${TUNNELS:-200}; SOAK_DUR=${SOAK_DUR:-300}; EVERY_MS=${EVERY_MS:-1000}; PAYLOAD=${PAYLOAD:-128}
CHURN=${CHURN:-10}; SAMPLE=${SAMPLE:-10}; MAX_GROWTH_MIB=${MAX_GROWTH_MIB:-10}
WARMUP=${WARMUP:-$(( SOAK_DUR >= 240 ? 60 : SOAK_DUR / 4 ))}   # samples before this are warm-up
OUT=${OUT:-$ROOT/bench/out/proxy/soak-$T-$(date -u +%Y%m%dT%H%M%SZ).txt}
[ "$T" = direct ] && { say "soak needs a proxy"; exit 2; }

install_tools || exit 1
if [ "$T" = tunnelguard ]; then build_tunnelguard || { say "tunnelguard: not buildable yet"; exit 1; }; fi
start_origin || exit 1
start_proxy "$T" || exit 1
PID=$(bg_pid "$T")
[ "$T" = squid ] && PID=$(tree "$PID" | tail -1)   # squid -N: one process, but be safe
echo "# soak $(date -u +%FT%TZ) target=$T pid=$PID tunnels=$TUNNELS dur=${SOAK_DUR}s every=${EVERY_MS}ms payload=$PAYLOAD churn=$CHURN/s sample=${SAMPLE}s node $(node --version) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
node "$HERE/load.mjs" soak --proxy "$(proxy_addr "$T")" --target $H:$APP_PORT --churn-target $H:$HELLO_PORT \
  --tunnels "$TUNNELS" --dur "$SOAK_DUR" --every "$EVERY_MS" --payload "$PAYLOAD" --churn "$CHURN" \
  --sample "$SAMPLE" --watch-pid "$PID" --sni origin.test | tee -a "$OUT"
alive=yes; kill -0 "$PID" 2>/dev/null || alive=no
stop_proxy "$T"
# verdict: samples from t >= WARMUP s (after warm-up and the 2-s ramp), RSS growth and slope
awk -v max="$MAX_GROWTH_MIB" -v alive="$alive" -v w="$WARMUP" -v half="$(( (WARMUP + SOAK_DUR) / 2 ))" '
  /^t_s=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            t = v["t_s"] + 0; r = v["rss_MiB"] + 0; errs = v["errors"]; drops = v["drops"]; open = v["open"]
            if (t >= w) { n++; sx += t; sy += r; sxx += t*t; sxy += t*r; if (n == 1) r0 = r; r1 = r; if (r > hi) hi = r; if (lo == "" || r < lo) lo = r
              if (t >= half && h0 == "") h0 = r } }
  END { slope = (n > 1) ? (n*sxy - sx*sy) / (n*sxx - sx*sx) * 60 : 0
        growth = r1 - r0
        ok = (n > 1 && growth <= max && alive == "yes" && drops == 0) ? "flat" : "NOT FLAT or unhealthy"
        printf "# verdict: %s  rss_at_%ss=%.1f rss_end=%.1f growth_MiB=%.1f min=%.1f max=%.1f slope_MiB_per_min=%.2f growth_2nd_half_MiB=%.1f open_at_end=%s errors=%s drops=%s proxy_alive=%s (limit %s MiB)\n", ok, w, r0, r1, growth, lo, hi, slope, r1 - h0, open, errs, drops, alive, max }' "$OUT" | tee -a "$OUT"
say "raw: $OUT"
