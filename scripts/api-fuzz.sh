#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis generates requests for every
# operation of the hub's own OpenAPI document (served at /openapi.json) and
# sends them to the live hub — the built binary, a temp data dir, a real API
# key — asserting that no answer is a 5xx, that every status, content type
# and body is the one the document declares, and that the hub never crashes.
#
# The hub and schemathesis run in a private network namespace with only a
# loopback: fuzzed monitor URLs make the heartbeat probe them, and those
# probes must not leave the machine.
#
# Bounded: --max-examples per operation (API_FUZZ_EXAMPLES, default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
ST="${STATUSHUB_SCHEMATHESIS:-st}"
EXAMPLES="${API_FUZZ_EXAMPLES:-50}"
BIN="${STATUSHUB_BIN:-$PWD/target/debug/statushub}"

fail() { echo "api-fuzz: $*" >&2; exit 1; }

if [ "${1:-}" != "--inside" ]; then
  command -v "$ST" >/dev/null 2>&1 ||
    fail "schemathesis is missing: pip install schemathesis==$SCHEMATHESIS_VERSION (or set STATUSHUB_SCHEMATHESIS to its 'st')"
  have="$("$ST" --version 2>/dev/null | awk '{print $NF}')"
  [ "$have" = "$SCHEMATHESIS_VERSION" ] ||
    fail "schemathesis $have found, $SCHEMATHESIS_VERSION needed: pip install schemathesis==$SCHEMATHESIS_VERSION"
  [ -x "$BIN" ] || fail "no hub binary at $BIN: run cargo build first (or set STATUSHUB_BIN)"
  command -v unshare >/dev/null 2>&1 || fail "'unshare' is missing: apt-get install -y util-linux"
  unshare --net true 2>/dev/null ||
    fail "cannot create a network namespace (unshare --net needs root or CAP_SYS_ADMIN); the fuzzer must not reach other hosts"
  exec unshare --net bash "$0" --inside
fi

# Inside the namespace: only a loopback, brought up here.
ip link set lo up 2>/dev/null || python3 - <<'PY'
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifreq = struct.pack("16sH", b"lo", 0)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifreq))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
PY

work="$(mktemp -d)"
hub_pid=""
cleanup() {
  if [ -n "$hub_pid" ] && kill -0 "$hub_pid" 2>/dev/null; then
    kill "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
api_key="fuzz-key-$RANDOM$RANDOM"
"$BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --jwt-secret "fuzz-secret-$RANDOM$RANDOM" --api-keys "$api_key" \
  --min-monitor-interval-ms 1000 >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log" >&2; fail "the hub exited during start-up"; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || fail "the hub did not become ready"

echo "api-fuzz: schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES examples per operation, hub on 127.0.0.1:$port"
status=0
"$ST" --config-file scripts/api-fuzz.toml run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $api_key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$EXAMPLES" --workers 1 --seed "${API_FUZZ_SEED:-1}" \
  --generation-database none --no-color \
  --report junit --report-dir "$work/report" || status=$?

if ! kill -0 "$hub_pid" 2>/dev/null; then
  tail -n 50 "$work/hub.log" >&2
  fail "the hub crashed during the run"
fi
if grep -q "panicked" "$work/hub.log"; then
  grep -B2 -A8 "panicked" "$work/hub.log" >&2
  fail "the hub panicked while handling a request"
fi
[ "$status" -eq 0 ] || fail "schemathesis found failures (above); replay one with the curl line it printed"
echo "api-fuzz: passed"
