# Helpers for the proxy bench (sourced by run.sh and soak.sh).
# Process hygiene: every process is started by bg_start, its PID kept in BG_PID[name]
# and in $RUN/NAME.pid; bg_stop NAME signals that PID and its own descendants only
# (TERM, then KILL after 5 s). No pkill/killall. An EXIT trap stops what we started.
set -u
HZ=$(getconf CLK_TCK)
declare -A BG_PID=()

say() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# tree PID: the PID and all its descendants, one per line
tree() { local c; echo "$1"; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; done; }

# bg_start NAME CMD... : run in the background, stdout+stderr to $RUN/NAME.log
bg_start() {
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  BG_PID[$name]=$!
  echo "$!" >"$RUN/$name.pid"
  say "started $name pid=$!: $*"
}
bg_pid() { echo "${BG_PID[$1]:-}"; }

bg_stop() {
  local name=$1 pid pids p i alive
  pid=${BG_PID[$name]:-}; [ -z "$pid" ] && return 0
  pids=$(tree "$pid" | sort -u)
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in $pids; do kill -0 "$p" 2>/dev/null && { say "KILL $name pid $p"; kill -KILL "$p" 2>/dev/null || true; }; done
  wait "$pid" 2>/dev/null || true
  unset "BG_PID[$name]"; rm -f "$RUN/$name.pid"
}
bg_stop_all() { local n; for n in "${!BG_PID[@]}"; do bg_stop "$n"; done; }
trap 'bg_stop_all' EXIT
trap 'bg_stop_all; exit 130' INT TERM

# cpu_ticks NAME : utime+stime of the process tree started as NAME (clock ticks)
cpu_ticks() {
  local pid p t=0 v; pid=$(bg_pid "$1"); [ -z "$pid" ] && { echo 0; return; }
  for p in $(tree "$pid"); do
    v=$(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat" 2>/dev/null); t=$((t + ${v:-0}))
  done
  echo $t
}
# mem_kb NAME FIELD : VmRSS / VmHWM summed over the tree (KiB)
mem_kb() {
  local pid p t=0 v; pid=$(bg_pid "$1"); [ -z "$pid" ] && { echo 0; return; }
  for p in $(tree "$pid"); do v=$(awk -v f="$2:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null); t=$((t + ${v:-0})); done
  echo $t
}
# /proc/stat: "busy total" ticks over all CPUs; box_pct A B -> busy % of the box (200 = 2 cores)
stat_snap() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
box_pct() { local b0 t0 b1 t1; read -r b0 t0 <<<"$1"; read -r b1 t1 <<<"$2"
  awk -v b=$((b1-b0)) -v t=$((t1-t0)) -v n="$(nproc)" 'BEGIN{ if (t<=0) print "NA"; else printf "%.0f\n", 100*n*b/t }'; }

# port_free HOST PORT : true if nothing accepts there
port_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# wait_tcp HOST PORT [SECONDS] [PID] : poll until it accepts (give up early if PID exits)
wait_tcp() {
  local i; for i in $(seq 1 $(( ${3:-20} * 20 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then say "pid $4 exited before $1:$2 accepted"; return 1; fi
    sleep 0.05
  done
  say "timeout waiting for $1:$2"; return 1
}

# render TEMPLATE OUT KEY=VALUE... : @KEY@ -> VALUE
render() {
  local in=$1 out=$2 kv args=(); shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
  if grep -q '@[A-Z_]*@' "$out"; then say "unrendered placeholder in $out"; return 1; fi
}

# tw_gate: wait until the TCP sockets in TIME_WAIT are at most TW_MAX (default 2000), at most TW_WAIT s
# (default 75; Linux keeps TIME_WAIT 60 s). A setup run leaves ~20,000 (of ~28,000 ephemeral ports), and
# the run after it paid for them (slower connects): seen as a pair-order effect in stop 34's A/B.
# Prints the count it stopped at; returns 1 when still above TW_MAX.
tw_gate() {
  local end=$(( $(date +%s) + ${TW_WAIT:-75} )) n
  while :; do
    n=$(( $(ss -tan state time-wait 2>/dev/null | wc -l) - 1 ))
    [ "$n" -le "${TW_MAX:-2000}" ] && { echo "$n"; return 0; }
    [ "$(date +%s)" -ge "$end" ] && { echo "$n"; return 1; }
    sleep 1
  done
}

# quiet_gate: wait (at most QUIET_WAIT s, default 15) until the box was at most QUIET_MAX %
# busy (default 60, of 200) over one second, so other people's load on the shared cores does
# not land in a measurement. Prints the last busy % seen; false when it gave up waiting.
quiet_gate() {
  local end=$(( $(date +%s) + ${QUIET_WAIT:-15} )) s0 s1 b
  while :; do
    s0=$(stat_snap); sleep 1; s1=$(stat_snap); b=$(box_pct "$s0" "$s1")
    [ "$b" != NA ] && [ "$b" -le "${QUIET_MAX:-60}" ] && { echo "$b"; return 0; }
    [ "$(date +%s)" -ge "$end" ] && { echo "$b"; return 1; }
  done
}
