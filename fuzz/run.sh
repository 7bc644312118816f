#!/usr/bin/env bash
# Runs the fuzz targets with cargo-fuzz, reading the committed seeds in
# fuzz/corpus/TARGET and writing what the fuzzer finds to a scratch corpus
# (fuzz/target/scratch/TARGET), so a run never changes the committed seeds.
#
#   fuzz/run.sh                 every target for 10 s (CI's smoke run)
#   fuzz/run.sh 600             every target for 10 minutes
#   fuzz/run.sh 600 envelope_open relay_store   those targets only
#
# FUZZ_BUILD=--dev builds without optimisation (with overflow checks and
# debug assertions): about half the build time, for short runs such as CI's.
# Crashes land in fuzz/artifacts/TARGET/; the script exits non-zero on the
# first one. Needs cargo-fuzz and the nightly-only sanitizer flags, which
# RUSTC_BOOTSTRAP=1 unlocks on a stable toolchain (as rust-fuzz documents).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"
shift || true
export RUSTC_BOOTSTRAP=1
build="${FUZZ_BUILD:--O}"
cargo fuzz build "$build"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
  mkdir -p "target/scratch/$t" "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  # -rss_limit_mb: a leak or an unbounded allocation is a finding too.
  log="target/scratch/$t.log"
  status=0
  cargo fuzz run "$build" "$t" "target/scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -aE '^(stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|#[0-9]+[[:space:]]+DONE)|SUMMARY|panicked|Test unit written' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz $t: failed (exit $status); the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
