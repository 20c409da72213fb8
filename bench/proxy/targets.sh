# The bench's loopback layout, tool install, tunnelguard build, origin and proxy start/stop.
# Sourced by run.sh and soak.sh after HERE/ROOT are set; sources lib.sh.
WORK="${WORK:-/tmp/tunnelguard-bench}"
RUN="$WORK/run"
mkdir -p "$RUN" "$ROOT/bench/out/proxy"
source "$HERE/lib.sh"

# loopback layout (ports below the ephemeral range)
H=127.0.0.1
TLS_PORT=24431; HELLO_PORT=24432; APP_PORT=24433; ORIGIN_DNS_PORT=24434
declare -A PPORT=( [tunnelguard]=24410 [squid]=24411 [tinyproxy]=24412 [node-pipe]=24413 )
TG_DNS_PORT=24453
TG_LOG_LEVEL=${TG_LOG_LEVEL:-warn}
# glibc's malloc settings for the Node targets (tunnelguard and the node pipe), as the
# Dockerfile, the systemd unit and `npm start` set them; TG_GLIBC_TUNABLES= runs glibc's defaults
TG_GLIBC_TUNABLES=${TG_GLIBC_TUNABLES-glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1}
# TARGET_CPU=N runs every proxy on CPU N (off by default; the client and the origin are never
# pinned). One vCPU of this VM is often much slower than the other, and an unpinned proxy mostly
# stays on the CPU it started on, so its rounds can split into two speeds (bench/README.md).
TARGET_CPU=${TARGET_CPU-}
PIN=()
if [ -n "$TARGET_CPU" ] && [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then PIN=(taskset -c "$TARGET_CPU"); fi

install_tools() {
  local need=()
  command -v squid >/dev/null || need+=(squid)
  command -v tinyproxy >/dev/null || need+=(tinyproxy)
  command -v openssl >/dev/null || need+=(openssl)
  [ -x /usr/bin/time ] || need+=(time)
  command -v ps >/dev/null || need+=(procps)
  command -v ss >/dev/null || need+=(iproute2)
  [ ${#need[@]} -eq 0 ] && return 0
  say "installing ${need[*]}"
  apt-get install -y -o DPkg::Lock::Timeout=600 "${need[@]}" >"$WORK/apt.log" 2>&1 || { say "apt-get failed, see $WORK/apt.log"; return 1; }
}

# build_tunnelguard: npm run build (unless NO_BUILD=1); true when dist/cli.js is there
build_tunnelguard() {
  [ -f "$ROOT/src/cli.ts" ] || { say "src/cli.ts is missing"; return 1; }
  if [ -z "${NO_BUILD:-}" ]; then
    # tsc still emits when other files have type errors: use what it emitted, but say so
    (cd "$ROOT" && npm run build --silent >"$WORK/build.log" 2>&1) || say "npm run build reported errors (see $WORK/build.log); using the emitted dist/"
  fi
  [ -f "$ROOT/dist/cli.js" ]
}

start_origin() {
  [ -s "$WORK/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 -subj /CN=origin.test \
    -addext subjectAltName=DNS:origin.test 2>/dev/null
  local p; for p in $TLS_PORT $HELLO_PORT $APP_PORT; do port_free $H $p || { say "port $p is busy"; return 1; }; done
  bg_start origin node "$HERE/origin.mjs" --addr $H --tls-port $TLS_PORT --hello-port $HELLO_PORT --app-port $APP_PORT --dns-port $ORIGIN_DNS_PORT \
    --key "$WORK/key.pem" --cert "$WORK/cert.pem" --sni origin.test
  wait_tcp $H $APP_PORT 20 "$(bg_pid origin)"
}

# start_proxy TARGET: fresh start, wait until it accepts
start_proxy() {
  local t=$1 d="$RUN/$1" port=${PPORT[$1]:-}
  [ "$t" = direct ] && return 0
  mkdir -p "$d"
  port_free $H "$port" || { say "port $port ($t) is busy"; return 1; }
  case $t in
    tunnelguard)
      render "$HERE/conf/tunnelguard.yaml.in" "$d/tunnelguard.yaml" PORT="$port" DNS_PORT=$TG_DNS_PORT UP_PORT=$ORIGIN_DNS_PORT \
        CONNECT_PORTS_YAML="$TLS_PORT, $HELLO_PORT, $APP_PORT" LOG_LEVEL="$TG_LOG_LEVEL" || return 1
      bg_start tunnelguard "${PIN[@]}" env GLIBC_TUNABLES=$TG_GLIBC_TUNABLES node ${TG_NODE_FLAGS:-} "${TG_DIST:-$ROOT/dist}/cli.js" serve --config "$d/tunnelguard.yaml" ;;
    squid)
      chmod 777 "$d"
      render "$HERE/conf/squid.conf.in" "$d/squid.conf" PORT="$port" DIR="$d" CONNECT_PORTS="$TLS_PORT $HELLO_PORT $APP_PORT" || return 1
      bg_start squid "${PIN[@]}" squid -N -f "$d/squid.conf" ;;
    tinyproxy)
      chmod 777 "$d"
      render "$HERE/conf/tinyproxy.conf.in" "$d/tinyproxy.conf" PORT="$port" DIR="$d" \
        CONNECT_LINES="ConnectPort $TLS_PORT\nConnectPort $HELLO_PORT\nConnectPort $APP_PORT" || return 1
      bg_start tinyproxy "${PIN[@]}" tinyproxy -d -c "$d/tinyproxy.conf" ;;
    node-pipe) bg_start node-pipe "${PIN[@]}" env GLIBC_TUNABLES=$TG_GLIBC_TUNABLES node "$HERE/pipe-proxy.mjs" --addr $H --port "$port" ;;
    *) say "unknown target $t"; return 1 ;;
  esac
  wait_tcp $H "$port" 30 "$(bg_pid "$t")"
}
stop_proxy() { [ "$1" = direct ] || bg_stop "$1"; }
proxy_addr() { if [ "$1" = direct ]; then echo direct; else echo "$H:${PPORT[$1]}"; fi; }
