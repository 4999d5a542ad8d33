#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer) of the parsers that take
# bytes from outside the hub: a short run of every target in fuzz/, each
# starting from its committed seeds (fuzz/seeds/<target>) in a throwaway
# corpus. Any crash fails the run and leaves its input in
# fuzz/artifacts/<target>/. Longer runs: docs/FUZZING.md.
#
# Works on the stable toolchain: cargo fuzz passes a few `-Z` flags to rustc
# and cargo, which stable accepts under RUSTC_BOOTSTRAP=1; with
# `--sanitizer none` nothing needs a nightly-only runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
PER_TARGET="${FUZZ_SECONDS:-20}"
fail() { echo "fuzz: $*" >&2; exit 1; }

cargo fuzz --version >/dev/null 2>&1 ||
  fail "cargo-fuzz is missing: cargo install cargo-fuzz@$CARGO_FUZZ_VERSION --locked"
command -v c++ >/dev/null 2>&1 || fail "a C++ compiler is missing (libFuzzer is C++): apt-get install -y g++"

export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --dev)
echo "fuzz: building the fuzz targets"
cargo fuzz build "${flags[@]}"

mapfile -t targets < <(cargo fuzz list)
[ "${#targets[@]}" -gt 0 ] || fail "no fuzz targets found in fuzz/"
corpus_root="$(mktemp -d)"
trap 'rm -rf "$corpus_root"' EXIT
for target in "${targets[@]}"; do
  seeds="fuzz/seeds/$target"
  [ -d "$seeds" ] || fail "no seeds for $target: add a few inputs under $seeds"
  mkdir -p "$corpus_root/$target"
  echo "fuzz: $target for ${PER_TARGET}s"
  if ! cargo fuzz run "${flags[@]}" "$target" "$corpus_root/$target" "$seeds" -- \
      -max_total_time="$PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 >"$corpus_root/$target.log" 2>&1; then
    tail -n 60 "$corpus_root/$target.log" >&2
    fail "$target crashed; the input is in fuzz/artifacts/$target/ — reproduce with
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --dev $target fuzz/artifacts/$target/<file>
then fix it and keep the input as a regression test (tests/fuzz_regressions.rs)"
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$corpus_root/$target.log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets ran ${PER_TARGET}s each without a crash"
