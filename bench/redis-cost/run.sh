#!/usr/bin/env bash
# What one publish costs Redis: commands, bytes in and out, Redis CPU and
# memory per retained event, with 1 and then 3 hub nodes subscribed.
# Starts a private redis-server on a spare port (REDIS_PORT, default 6390)
# so its counters hold nothing else, and hub nodes on 127.0.0.1:1808x.
#
#   bench/redis-cost/run.sh            # 10,000 publishes over 100 accounts per case
#   EVENTS=50000 bench/redis-cost/run.sh
#
# Figures and their reading: docs/SCALING.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PORT=${REDIS_PORT:-6390}
EVENTS=${EVENTS:-10000}
ACCOUNTS=${ACCOUNTS:-100}
BIN=${STATUSHUB_BIN:-$ROOT/target/release/statushub}
for tool in redis-server redis-cli node bc; do
  command -v "$tool" >/dev/null || { echo "redis-cost: $tool is required (apt-get install -y redis-server nodejs bc)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "redis-cost: build the hub first: cargo build --release (or set STATUSHUB_BIN)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
redis-server --port "$PORT" --save "" --appendonly no --daemonize yes --dir "$WORK" --logfile "$WORK/redis.log"
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done
export STATUSHUB_JWT_SECRET="redis-cost-secret-0123456789abcdef" STATUSHUB_API_KEYS="redis-cost-key"
node_up() {
  "$BIN" serve --listen "127.0.0.1:$1" --data-dir "$WORK/data$1" --redis-url "redis://127.0.0.1:$PORT" \
    --redis-prefix redis-cost --publish-rate 0 >"$WORK/hub$1.log" 2>&1 &
  PIDS+=($!)
  until curl -sf "http://127.0.0.1:$1/readyz" >/dev/null; do sleep 0.1; done
}
cpu() { redis-cli -p "$PORT" info cpu | tr -d '\r' | awk -F: '/used_cpu_(sys|user):/{s+=$2} END{printf "%.4f", s}'; }
stat() { redis-cli -p "$PORT" info stats | tr -d '\r' | awk -F: -v k="$1" '$1==k{print $2}'; }
measure() { # label kind
  redis-cli -p "$PORT" config resetstat >/dev/null
  local before; before=$(cpu)
  node bench/redis-cost/publish.mjs http://127.0.0.1:18080 redis-cost-key "$EVENTS" "$ACCOUNTS" "$2" >"$WORK/out.json"
  local after; after=$(cpu)
  local cmds; cmds=$(redis-cli -p "$PORT" info commandstats | tr -d '\r' | grep '^cmdstat' | grep -v 'config|resetstat' \
    | sed -E 's/^cmdstat_([^:]+):calls=([0-9]+).*/\1 \2/' | awk -v n="$EVENTS" '{printf "%s %.2f, ", $1, $2/n}')
  printf '| %s | %s | %s | %.0f | %.0f | %.1f |\n' "$1" "$2" "${cmds%, }" \
    "$(echo "$(stat total_net_input_bytes) / $EVENTS" | bc -l)" "$(echo "$(stat total_net_output_bytes) / $EVENTS" | bc -l)" \
    "$(echo "($after - $before) * 1000000 / $EVENTS" | bc -l)"
}
echo "| nodes subscribed | event | commands per publish | bytes in | bytes out | Redis CPU-µs |"
echo "|---|---|---|--:|--:|--:|"
node_up 18080
measure 1 custom
measure 1 phone
node_up 18081; node_up 18082
measure 3 custom
measure 3 phone
used=$(redis-cli -p "$PORT" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}')
events=0
for a in $(seq 0 $((ACCOUNTS - 1))); do events=$((events + $(redis-cli -p "$PORT" xlen "redis-cost:{acct$a}:events"))); done
echo
echo "retained events: $events; Redis used_memory: $used bytes; about $((used / events)) bytes per retained event"
