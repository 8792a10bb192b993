# shellcheck shell=bash
# Shared by scripts/control-plane, scripts/node and e2e/node.sh: timing,
# long install steps that report progress, and free loopback ports. The
# sourcing script defines die.

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Runs one install step, printing elapsed time every 30 s so it is never silent.
step() {
  local what="$1" expect="$2"; shift 2
  local start; start="$(now)"
  echo "  $what (about $expect on 2 cores when cold)" >&2
  "$@" &
  local pid=$!
  while ! wait_for "$pid" 30; do
    echo "    ... $what: $(since "$start") s" >&2
  done
  wait "$pid" || die "$what failed (command: $*)"
  echo "  done in $(since "$start") s: $what" >&2
}

# True when pid has exited within the timeout; its status is collected later by `wait`.
wait_for() {
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.5
  done
  ! kill -0 "$pid" 2>/dev/null
}

port_is_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below Linux's ephemeral range (32768-), so no outgoing connection holds it.
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 12000))
    port_is_taken "$port" || { echo "$port"; return 0; }
  done
  die "no free loopback port found"
}
