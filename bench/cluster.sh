#!/usr/bin/env bash
# The cluster row of docs/PERFORMANCE.md: one node on SQLite beside two
# nodes on one Redis, in one run. In the cluster cases the clients are on
# node B and every publish goes through node A (`loadgen --publish-url`), so
# every delivery crosses Redis pub/sub from one node to the other; server
# figures (CPU, RSS) are node B's for fanout and node A's for publish.
#
#   bench/cluster.sh             fanout 1,000 clients / 10 accounts (max rate and 300/s), publish over 100 accounts
#   EVENTS=1000 bench/cluster.sh
#
# Node B (or the SQLite node) runs on core SERVER_CORE (0), the load
# generator on LOAD_CORE (1); node A and redis-server share core 0 with B,
# so the cluster rows carry the other node's and Redis's CPU on B's core:
# compare them with the SQLite row of the same run only. Results (JSON lines,
# tables, logs) land in target/bench/cluster-<UTC stamp>/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
EVENTS=${EVENTS:-300}
REDIS_PORT=${REDIS_PORT:-6391}
for tool in taskset redis-server redis-cli cargo curl; do
  command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is required (apt-get install -y util-linux redis-server curl)" >&2; exit 1; }
done
OUT="$ROOT/target/bench/cluster-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
export LOADGEN_JWT_SECRET="bench-cluster-secret-$$" LOADGEN_API_KEY="bench-cluster-key-$$"

echo "== building (release)"
cargo build --release -p statushub -p loadgen || exit 1
HUB="$ROOT/target/release/statushub"
LOADGEN="$ROOT/target/release/loadgen"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_hub NAME [--redis-url URL]: prints "PID URL".
start_hub() {
  local name=$1; shift
  local log="$OUT/$name.log"
  taskset -c "$SERVER_CORE" "$HUB" serve --listen 127.0.0.1:0 --data-dir "$(mktemp -d "$OUT/data-XXXX")" \
    --jwt-secret "$LOADGEN_JWT_SECRET" --api-keys "$LOADGEN_API_KEY" --publish-rate 0 \
    --max-connections 20000 --max-connections-per-ip 20000 "$@" > "$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 300); do
    local url
    url=$(grep -o "listening on http://[0-9.:]*" "$log" | head -1 | sed 's/listening on //')
    if [ -n "$url" ]; then HUB_PID=$pid; HUB_URL=$url; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster.sh: $name did not start; see $log" >&2
  exit 1
}

load() { # name args...
  local name=$1; shift
  echo "== $name: loadgen $*"
  taskset -c "$LOAD_CORE" "$LOADGEN" "$@" --json "$RESULTS" --max-duration 600s 2> "$OUT/loadgen-$name.log" ||
    echo "   failed: see $OUT/loadgen-$name.log"
}

fanout=(fanout --clients 1000 --accounts 10 --events "$EVENTS")

# One node on SQLite.
start_hub sqlite
load sqlite-fanout "${fanout[@]}" --url "$HUB_URL" --server-pid "$HUB_PID" --server-name "statushub sqlite"
load sqlite-rate "${fanout[@]}" --rate 300 --url "$HUB_URL" --server-pid "$HUB_PID" --server-name "statushub sqlite"
load sqlite-publish publish --accounts 100 --events 100000 --duration 10s --url "$HUB_URL" --server-pid "$HUB_PID" --server-name "statushub sqlite"
cleanup

# Two nodes on one Redis (appendonly yes, appendfsync always, as in docker-compose.yml).
redis_dir=$(mktemp -d "$OUT/redis-XXXX")
taskset -c "$SERVER_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync always --dir "$redis_dir" --daemonize yes --logfile "$OUT/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
start_hub node-a --redis-url "redis://127.0.0.1:$REDIS_PORT"
A_PID=$HUB_PID; A_URL=$HUB_URL
start_hub node-b --redis-url "redis://127.0.0.1:$REDIS_PORT"
B_PID=$HUB_PID; B_URL=$HUB_URL
load cluster-fanout "${fanout[@]}" --url "$B_URL" --publish-url "$A_URL" --server-pid "$B_PID" --server-name "statushub 2 nodes, Redis"
load cluster-rate "${fanout[@]}" --rate 300 --url "$B_URL" --publish-url "$A_URL" --server-pid "$B_PID" --server-name "statushub 2 nodes, Redis"
load cluster-publish publish --accounts 100 --events 100000 --duration 10s --url "$A_URL" --server-pid "$A_PID" --server-name "statushub 2 nodes, Redis"
cleanup

"$LOADGEN" report "$RESULTS" | tee "$OUT/tables.md"
echo "results: $OUT"
