#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, then the Node
# end-to-end suites against the freshly built binary. Installs the npm
# packages it needs (from the lock files); fails naming any missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "test.sh: '$1' is missing: $2" >&2; exit 1; }
}
need cargo "install Rust (https://rustup.rs)"
need node "install Node.js 20+ (apt-get install -y nodejs npm)"
need npm "install npm (apt-get install -y npm)"

step() { printf '\n==> %s\n' "$*"; }

# The Redis Cluster the cluster-layout tests use: started here unless the
# caller names one (.ci/run starts it too).
if [ -z "${STATUSHUB_TEST_REDIS_CLUSTER:-}" ]; then
  step "redis cluster (127.0.0.1:7101-7103)"
  bash scripts/redis-cluster.sh
  export STATUSHUB_TEST_REDIS_CLUSTER=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
fi

step "cargo build"
cargo build --locked --workspace --all-targets

step "cargo test"
cargo test --locked --workspace

export STATUSHUB_BIN="$PWD/target/debug/statushub"
for suite in tests/node web-client tests/browser tests/react-app tests/deploy; do
  [ -f "$suite/package.json" ] || continue
  step "npm test ($suite)"
  (cd "$suite" && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run --if-present check:page)
done
# Fuzzing: the live API against its OpenAPI document (schemathesis), then a
# short coverage-guided run of each parser fuzzer (docs/FUZZING.md).
step "api fuzz (schemathesis)"
bash scripts/api-fuzz.sh
step "fuzz (cargo fuzz)"
bash scripts/fuzz.sh

step "all suites passed"
