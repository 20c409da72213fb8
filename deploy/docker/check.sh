#!/usr/bin/env bash
# Build the image and check that it does what docs/deploy.md says, on this machine's loopback:
# non-root, DNS on 53/udp and 53/tcp, the proxy on 3128, the admin listener on 9153, the
# HEALTHCHECK healthy, SIGHUP reloads, `report` reads `docker logs`, `docker stop` exits 0.
#
#   bash deploy/docker/check.sh            # needs a Docker engine and dig, curl
#   IMAGE=tunnelguard:test NO_BUILD=1 …    # check an image built already
#   BUILD_FLAGS="--network host" …         # extra `docker build` flags
#   RUN_FLAGS="--read-only --cap-drop ALL --security-opt no-new-privileges:true" …   # extra `docker run` flags
#
# The container is started with a dead upstream (its own 127.0.0.1:9) and asked only names its
# lists answer, so nothing is forwarded anywhere; its ports are published on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
IMAGE=${IMAGE:-tunnelguard:check}
NAME=${NAME:-tunnelguard-check}
DNS_PORT=${DNS_PORT:-25553}; PROXY_PORT=${PROXY_PORT:-25528}; ADMIN_PORT=${ADMIN_PORT:-25593}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
for tool in docker dig curl; do command -v $tool >/dev/null || { echo "check.sh: $tool is needed" >&2; exit 2; }; done

if [ -z "${NO_BUILD:-}" ]; then
  # shellcheck disable=SC2086
  docker build ${BUILD_FLAGS:-} -t "$IMAGE" . >/tmp/tunnelguard-docker-build.log 2>&1 \
    || { tail -20 /tmp/tunnelguard-docker-build.log; echo "check.sh: docker build failed" >&2; exit 1; }
  ok "docker build ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
fi
docker rm -f "$NAME" >/dev/null 2>&1 || true
trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC2086
docker run -d --name "$NAME" ${RUN_FLAGS:-} \
  -p 127.0.0.1:$DNS_PORT:53/udp -p 127.0.0.1:$DNS_PORT:53/tcp -p 127.0.0.1:$PROXY_PORT:3128 -p 127.0.0.1:$ADMIN_PORT:9153 \
  "$IMAGE" serve --config /etc/tunnelguard/config.yaml --upstream udp://127.0.0.1:9 >/dev/null

ready=''
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.5
done
check "ready within 30 s (/readyz 200)" test -n "$ready"
check "runs as uid 1000, not root" test "$(docker exec "$NAME" id -u)" = 1000
check "DNS over UDP: connect.ngrok-agent.com sinkholed to 0.0.0.0" \
  test "$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$DNS_PORT" connect.ngrok-agent.com A)" = 0.0.0.0
check "DNS over TCP: x.ngrok-free.app AAAA sinkholed to ::" \
  test "$(dig +tcp +short +time=2 +tries=1 @127.0.0.1 -p "$DNS_PORT" x.ngrok-free.app AAAA)" = ::
check "proxy: CONNECT to a listed name gets 403" \
  test "$(curl -s -o /dev/null -w '%{http_connect}' -x "http://127.0.0.1:$PROXY_PORT" https://connect.ngrok-agent.com/ || true)" = 403
check "/metrics counts the DNS decisions" \
  bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep -q '^tunnelguard_decisions_total{source=\"dns\",action=\"sinkhole\".*} 2$'"

health=''
for _ in $(seq 1 90); do               # the HEALTHCHECK's first run is 30 s (its interval) after the start
  health=$(docker inspect --format '{{.State.Health.Status}}' "$NAME")
  [ "$health" = healthy ] && break
  sleep 1
done
check "HEALTHCHECK: healthy" test "$health" = healthy

docker kill -s HUP "$NAME" >/dev/null
reloaded=''
for _ in $(seq 1 20); do
  docker logs "$NAME" 2>/dev/null | grep -q '"tunnelguard.reason":"SIGHUP".*"message":"reloaded"' && { reloaded=1; break; }
  sleep 0.5
done
check "SIGHUP reloads (through tini)" test -n "$reloaded"
check "report reads docker logs: one client, the two names" \
  bash -c "docker logs '$NAME' 2>/dev/null | docker run -i --rm '$IMAGE' report - --format csv | grep -c -E 'connect\.ngrok-agent\.com|x\.ngrok-free\.app' | grep -qx 2"

start=$(date +%s)
docker stop -t 10 "$NAME" >/dev/null
took=$(( $(date +%s) - start ))
check "docker stop: exit code 0" test "$(docker inspect --format '{{.State.ExitCode}}' "$NAME")" = 0
check "docker stop: done in ${took} s, before the 10 s kill" test "$took" -lt 10
check "the last log line says stopped" bash -c "docker logs '$NAME' 2>&1 | tail -1 | grep -q '\"message\":\"stopped\"'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
