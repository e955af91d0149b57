#!/usr/bin/env bash
# Builds the cargo-fuzz targets of fuzz/ once, then runs each for a bounded time:
#   scripts/fuzz.sh [seconds-per-target]   (default 30)
# Each target starts from its committed seeds (fuzz/seeds/<target>) and its working corpus
# (fuzz/corpus/<target>, not committed; new inputs land there). A panic or failed invariant,
# a slow input (-timeout) or running out of memory fails the script; the input that did it
# is in fuzz/artifacts/<target>/, the log in fuzz/logs/<target>.log. docs/testing.md says
# how to fuzz longer and how to reproduce a crash.
#
# cargo-fuzz needs nightly compiler flags: the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. No sanitizer (the code under test is safe Rust, and ASan would double the
# build), debug assertions and overflow checks on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
targets=(frame_parser process control_json capture_text)
flags=(--sanitizer none --debug-assertions)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: run scripts/setup.sh (cargo install cargo-fuzz --locked)" >&2
  exit 1
fi
# cargo fuzz has no --locked: check here that fuzz/Cargo.lock needs no update.
cargo metadata --locked --format-version 1 >/dev/null

start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz.sh: built in $((SECONDS - start)) s"

mkdir -p logs
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== fuzz $target for $seconds s"
  # libFuzzer stops itself after -max_total_time; the outer timeout only catches a hang.
  if timeout --kill-after=10 $((seconds + 120)) \
    cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"logs/$target.log" 2>&1; then
    grep -E '^Done|stat::number_of_executed_units|stat::new_units_added' "logs/$target.log" || true
  else
    tail -n 40 "logs/$target.log"
    echo "fuzz.sh: $target FAILED (log: fuzz/logs/$target.log, input: fuzz/artifacts/$target/)" >&2
    failed+=("$target")
  fi
done

echo "fuzz.sh: done in $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
