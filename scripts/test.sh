#!/usr/bin/env bash
# Runs every check and test of xvs: formatting, clippy, the release build, then all unit,
# golden, property and end-to-end tests (the end-to-end ones need root; under CI=true a
# missing root is a failure, not a skip), then a short run of each fuzz target
# (scripts/fuzz.sh; XVS_FUZZ_SECONDS per target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build --release (binaries used by the end-to-end tests)"
cargo build --release --workspace --bins --locked
echo "== cargo test --release"
cargo test --release --workspace --locked --no-fail-fast
echo "== fuzz (scripts/fuzz.sh)"
bash scripts/fuzz.sh "${XVS_FUZZ_SECONDS:-20}"
