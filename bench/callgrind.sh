#!/usr/bin/env bash
# Instructions per packet of the hot path, counted by callgrind (exact and repeatable, unlike
# timings on a shared machine).
#
# For each case (new, established, reply) it runs `xvs-bench process --case CASE --iterations N`
# under `valgrind --tool=callgrind` for two values of N, and prints
#   (instructions at N2 - instructions at N1) / (N2 - N1)
# so that everything that does not scale with the packets (start-up, the fixture, the
# handshakes of `established` and `reply`) cancels out. Two columns:
#   process_batch  instructions inside Fixture::process_batch only (--toggle-collect): the
#                  `process` calls of a batch and the verdict checks; what ns/packet's `net`
#                  column times.
#   whole loop     the whole program: adds restoring each frame from its template and, for
#                  `new`, emptying the table at the end of each round over the flows.
#
# Usage: bench/callgrind.sh [N1 N2]      (default 100000 300000; FLOWS=1024 by default)
# Needs valgrind (Debian package `valgrind`, with callgrind_annotate); not installed by
# scripts/setup.sh since CI does not run this script. Builds `cargo build --release -p xvs-bench`
# (CARGO_TARGET_DIR is honoured); set XVS_BENCH to use another binary.
set -euo pipefail

n1=${1:-100000}
n2=${2:-300000}
flows=${FLOWS:-1024}
if ((n2 <= n1)); then
    echo "usage: $0 [N1 N2] with N2 > N1" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "error: valgrind not found (apt-get install valgrind)" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${XVS_BENCH:-} ]]; then
    (cd "$root" && cargo build --release -p xvs-bench >&2)
    XVS_BENCH=${CARGO_TARGET_DIR:-$root/target}/release/xvs-bench
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Ir of one run: $1 case, $2 iterations, $3 extra valgrind options.
instructions() {
    local file="$out/$1.$2.${3:+toggle}"
    # shellcheck disable=SC2086 # $3 is an option or nothing
    valgrind --tool=callgrind --callgrind-out-file="$file" $3 \
        "$XVS_BENCH" process --case "$1" --iterations "$2" --flows "$flows" \
        >"$out/stdout" 2>"$out/stderr" || { cat "$out/stdout" "$out/stderr" >&2; exit 1; }
    awk '/^totals:/ { print $2 }' "$file"
}

echo "instructions per packet, $flows flows, N = $n1 and $n2 ($XVS_BENCH)"
printf '%-12s %14s %12s\n' case process_batch "whole loop"
for case in new established reply; do
    toggle='--toggle-collect=*Fixture::process_batch'
    b1=$(instructions "$case" "$n1" "$toggle")
    b2=$(instructions "$case" "$n2" "$toggle")
    w1=$(instructions "$case" "$n1" "")
    w2=$(instructions "$case" "$n2" "")
    awk -v c="$case" -v b1="$b1" -v b2="$b2" -v w1="$w1" -v w2="$w2" -v n1="$n1" -v n2="$n2" \
        'BEGIN { printf "%-12s %14.1f %12.1f\n", c, (b2 - b1) / (n2 - n1), (w2 - w1) / (n2 - n1) }'
done
