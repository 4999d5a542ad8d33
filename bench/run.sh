#!/usr/bin/env bash
# Runs every benchmark scenario against statushub and the Node socket.io peer
# (and the fanout-10k and rate cases against bench/ceiling, the no-persistence
# hub that is the throughput ceiling) in one go and writes the results into
# docs/PERFORMANCE.md (between the bench:begin / bench:end markers; the rest
# of the file is left alone).
#
# Each case gets a freshly started server (fresh data dir for statushub),
# pinned to one core (taskset -c $SERVER_CORE); the load generator runs on the
# other (taskset -c $LOAD_CORE). Cases of one scenario run back to back,
# statushub, peer, ceiling, so their ratios are measured under the same conditions.
#
#   bench/run.sh                 default scale, about 5-10 minutes
#   bench/run.sh --full          the issue's full scale (idle at 19,900 connections)
#   bench/run.sh --only fanout   one scenario (fanout, rate, idle, publish; rate is
#                                rate-300 and rate-10k)
#   bench/run.sh --no-doc        print the tables, leave docs/PERFORMANCE.md alone
#
# Environment: SERVER_CORE (0), LOAD_CORE (1), IDLE_CLIENTS (5000; 19900 with
# --full), CASE_TIMEOUT (600 s), BENCH_NICE (0; e.g. -10 gives servers and
# load generator a larger CPU share than other work on a shared machine). Servers listen on a free port of 127.0.0.1
# (port 0); the URL is read from their "listening on" line.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

FULL=0
ONLY=""
WRITE_DOC=1
while [ $# -gt 0 ]; do
  case "$1" in
    --full) FULL=1 ;;
    --only) ONLY="$2"; shift ;;
    --no-doc) WRITE_DOC=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
CASE_TIMEOUT=${CASE_TIMEOUT:-600}
BENCH_NICE=${BENCH_NICE:-0}
if [ "$FULL" = 1 ]; then IDLE_CLIENTS=${IDLE_CLIENTS:-19900}; else IDLE_CLIENTS=${IDLE_CLIENTS:-5000}; fi
SECRET="bench-jwt-secret-$$"
KEY="bench-api-key-$$"
export LOADGEN_JWT_SECRET="$SECRET" LOADGEN_API_KEY="$KEY"

for tool in taskset node npm cargo; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (taskset: apt-get install -y util-linux)" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "run.sh: needs 2 cores (server on one, load on the other); this machine has $(nproc)" >&2
  exit 1
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/target/bench/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
COMMANDS="$OUT/commands.txt"
FAILURES="$OUT/failures.txt"
: > "$RESULTS"; : > "$COMMANDS"; : > "$FAILURES"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)

echo "== building (release)"
cargo build --release -p statushub -p loadgen -p ceiling || exit 1
HUB="$ROOT/target/release/statushub"
LOADGEN="$ROOT/target/release/loadgen"
CEILING="$ROOT/target/release/ceiling"
echo "== peer dependencies"
(cd bench/peer-socketio && { [ -d node_modules/socket.io ] || npm ci --no-audit --no-fund; }) || exit 1

SERVER_PID=""
SERVER_LOG=""
DATA_DIR=""

# Waits for the server's "listening on http://…" line and sets URL from it.
wait_listening() {
  local log=$1
  for _ in $(seq 1 300); do
    URL=$(grep -o "listening on http://[0-9.:]*" "$log" 2>/dev/null | head -1 | sed 's/listening on //')
    [ -n "$URL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_server() {
  local name=$1
  SERVER_LOG="$OUT/$name-$CASE.log"
  case "$name" in
    statushub)
      DATA_DIR=$(mktemp -d "$OUT/data-XXXX")
      nice -n "$BENCH_NICE" taskset -c "$SERVER_CORE" "$HUB" serve --listen 127.0.0.1:0 --data-dir "$DATA_DIR" \
        --jwt-secret "$SECRET" --api-keys "$KEY" \
        --publish-rate 0 --max-connections 20000 --max-connections-per-ip 20000 > "$SERVER_LOG" 2>&1 &
      SERVER_PID=$! ;;
    peer)
      nice -n "$BENCH_NICE" taskset -c "$SERVER_CORE" node bench/peer-socketio/server.js --listen 127.0.0.1:0 \
        --jwt-secret "$SECRET" --api-keys "$KEY" \
        --publish-rate 0 --max-connections 20000 --max-connections-per-ip 20000 > "$SERVER_LOG" 2>&1 &
      SERVER_PID=$! ;;
    ceiling)
      nice -n "$BENCH_NICE" taskset -c "$SERVER_CORE" "$CEILING" --listen 127.0.0.1:0 \
        --jwt-secret "$SECRET" --api-keys "$KEY" \
        --publish-rate 0 --max-connections 20000 --max-connections-per-ip 20000 > "$SERVER_LOG" 2>&1 &
      SERVER_PID=$! ;;
  esac
  if ! wait_listening "$SERVER_LOG"; then
    echo "run.sh: $name did not start; see $SERVER_LOG" >&2
    tail -5 "$SERVER_LOG" >&2
    stop_server
    return 1
  fi
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
  [ -n "$DATA_DIR" ] && rm -rf "$DATA_DIR"
  DATA_DIR=""
}
trap stop_server EXIT

# run_case NAME SERVER LOADGEN-ARGS...: one loadgen run against a fresh server.
CASE=""
run_case() {
  CASE=$1; local server=$2; shift 2
  echo "== $CASE on $server: loadgen $*"
  start_server "$server" || { echo "$CASE | $server | server did not start" >> "$FAILURES"; return; }
  local cmd=(nice -n "$BENCH_NICE" taskset -c "$LOAD_CORE" "$LOADGEN" "$@" --url "$URL" --server-pid "$SERVER_PID"
             --server-name "$server" --json "$RESULTS" --max-duration "${CASE_TIMEOUT}s")
  echo "${cmd[*]}" | sed -e "s#$ROOT/##g" -e "s/--server-pid [0-9]*/--server-pid \$PID/" \
    -e "s#--url http://[0-9.:]*#--url \$URL#" >> "$COMMANDS"
  if ! "${cmd[@]}" 2> "$OUT/loadgen-$CASE-$server.log"; then
    local why
    why=$(grep "loadgen: error" "$OUT/loadgen-$CASE-$server.log" | tail -1 | sed 's/|/\\|/g')
    echo "$CASE | $server | ${why:-loadgen failed, see its log}" >> "$FAILURES"
    echo "   failed: ${why:-see $OUT/loadgen-$CASE-$server.log}"
  fi
  stop_server
}

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if want fanout; then
  for t in socketio ws; do run_case fanout-1k statushub fanout --transport $t --clients 1000 --accounts 10 --events 1000; done
  run_case fanout-1k peer fanout --clients 1000 --accounts 10 --events 1000
  for t in socketio ws; do run_case fanout-10k statushub fanout --transport $t --clients 10000 --accounts 100 --events 100; done
  run_case fanout-10k peer fanout --clients 10000 --accounts 100 --events 100
  run_case fanout-10k ceiling fanout --transport ws --clients 10000 --accounts 100 --events 100
fi
if want rate; then
  for t in socketio ws; do run_case rate-300 statushub fanout --transport $t --clients 1000 --accounts 10 --events 300 --rate 300; done
  run_case rate-300 peer fanout --clients 1000 --accounts 10 --events 300 --rate 300
  run_case rate-300 ceiling fanout --transport ws --clients 1000 --accounts 10 --events 300 --rate 300
  # 300 publishes/s over 100 accounts to 10,000 clients: 30 events each, 10 s.
  for t in socketio ws; do run_case rate-10k statushub fanout --transport $t --clients 10000 --accounts 100 --events 30 --rate 300; done
  run_case rate-10k peer fanout --clients 10000 --accounts 100 --events 30 --rate 300
  run_case rate-10k ceiling fanout --transport ws --clients 10000 --accounts 100 --events 30 --rate 300
fi
if want idle; then
  for t in socketio ws; do run_case idle statushub idle --transport $t --clients "$IDLE_CLIENTS" --accounts 100; done
  run_case idle peer idle --clients "$IDLE_CLIENTS" --accounts 100
fi
if want publish; then
  for a in 1 100; do
    run_case "publish-$a" statushub publish --accounts $a --events 100000 --duration 10s
    run_case "publish-$a" peer publish --accounts $a --events 100000 --duration 10s
  done
fi

ELAPSED=$(( $(date +%s) - STARTED ))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
TABLES="$OUT/tables.md"
"$LOADGEN" report "$RESULTS" > "$TABLES" || exit 1

BLOCK="$OUT/block.md"
{
  echo "<!-- bench:begin (written by bench/run.sh; edits between the markers are overwritten) -->"
  echo "### Latest run"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), $( [ "$FULL" = 1 ] && echo 'full scale' || echo 'default scale') (idle at $IDLE_CLIENTS connections), took ${ELAPSED} s"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "- load average (1/5/15 min) at start: $LOAD_START, at end: $LOAD_END (other work on the machine shares both cores: compare ratios within this run, not absolute figures across runs)"
  echo "- servers pinned with \`taskset -c $SERVER_CORE\`, load generator with \`taskset -c $LOAD_CORE\`, both at nice $BENCH_NICE; statushub $(git rev-parse --short HEAD 2>/dev/null) release build, SQLite synchronous=FULL; peer: node $(node --version), socket.io $(node -p "require('./bench/peer-socketio/node_modules/socket.io/package.json').version")"
  echo
  cat "$TABLES"
  if [ -s "$FAILURES" ]; then
    echo
    echo "#### Cases that did not run"
    echo
    echo "| case | server | why |"
    echo "|---|---|---|"
    sed 's/^/| /; s/$/ |/' "$FAILURES"
  fi
  echo
  echo "#### Commands"
  echo
  echo "Servers: \`nice -n $BENCH_NICE taskset -c $SERVER_CORE target/release/statushub serve --listen 127.0.0.1:0 --data-dir <fresh temp dir> --jwt-secret \$SECRET --api-keys \$KEY\`, \`nice -n $BENCH_NICE taskset -c $SERVER_CORE node bench/peer-socketio/server.js --listen 127.0.0.1:0 --jwt-secret \$SECRET --api-keys \$KEY\` and \`nice -n $BENCH_NICE taskset -c $SERVER_CORE target/release/ceiling --listen 127.0.0.1:0 --jwt-secret \$SECRET --api-keys \$KEY\`, one fresh server per line below; \`LOADGEN_JWT_SECRET\` / \`LOADGEN_API_KEY\` in the environment."
  echo
  echo '```'
  cat "$COMMANDS"
  echo '```'
  echo "<!-- bench:end -->"
} > "$BLOCK"

if [ "$WRITE_DOC" = 1 ]; then
  DOC="$ROOT/docs/PERFORMANCE.md"
  mkdir -p "$(dirname "$DOC")"
  if [ -f "$DOC" ] && grep -q "<!-- bench:begin" "$DOC"; then
    awk -v block="$BLOCK" '
      /<!-- bench:begin/ { while ((getline line < block) > 0) print line; skip = 1; next }
      /<!-- bench:end -->/ { skip = 0; next }
      !skip { print }
    ' "$DOC" > "$DOC.tmp" && mv "$DOC.tmp" "$DOC"
  elif [ -f "$DOC" ]; then
    { cat "$DOC"; echo; cat "$BLOCK"; } > "$DOC.tmp" && mv "$DOC.tmp" "$DOC"
  else
    { echo "# Performance"; echo; cat "$BLOCK"; } > "$DOC.tmp" && mv "$DOC.tmp" "$DOC"
  fi
  echo "== wrote $DOC"
fi
cat "$TABLES"
echo "== results in $OUT (took ${ELAPSED} s)"
