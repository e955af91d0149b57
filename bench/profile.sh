#!/usr/bin/env bash
# Where the director's core spends its cycles while one target forwards a fixed load.
#
# Runs `xvs-bench throughput --target TARGET --rate RATE --duration SECONDS` (one trial, the
# rig's default placement: generator on CPU 0, the director and its receive on CPU 1), and
# samples CPU 1 with `perf record -a -C 1 -g` for the trial's length once the generator
# starts. Prints the shares by binary/kernel (`--sort dso`) and by function (`--sort sym`,
# self time, >= 1 %), kernel and user space together, and CPU 1's busy share from /proc/stat
# (perf's cpu-clock cannot sample softirq run from the idle task); keeps the perf.data file.
# On a VM without a PMU cpu-clock samples only where interrupts are enabled, so time spent
# with them off is charged to the next spin_unlock_irqrestore or similar.
#
# Usage: bench/profile.sh TARGET RATE [SECONDS] [extra xvs-bench options...]
#   e.g. bench/profile.sh xvs 150000 5
#        bench/profile.sh nft 150000 5 --placement softirq
# Needs root and perf (Debian package `linux-perf`; not installed by scripts/setup.sh since CI
# does not run this script). Uses target/release/xvs-bench (XVS_BENCH to override); OUT is the
# output directory (default bench-results/profile).
set -euo pipefail

if (($# < 2)); then
    echo "usage: $0 TARGET RATE [SECONDS] [xvs-bench options...]" >&2
    exit 2
fi
target=$1
rate=$2
seconds=${3:-5}
shift $(($# < 3 ? $# : 3))
command -v perf >/dev/null || { echo "error: perf not found (apt-get install linux-perf)" >&2; exit 2; }
bench=${XVS_BENCH:-target/release/xvs-bench}
[ -x "$bench" ] || { echo "error: $bench not built (cargo build --release --bins)" >&2; exit 2; }
out=${OUT:-bench-results/profile}
mkdir -p "$out"
data="$out/$target.perf.data"

"$bench" throughput --target "$target" --rate "$rate" --duration "$seconds" "$@" \
    >"$out/$target.throughput.txt" 2>&1 &
bench_pid=$!
trap 'kill $bench_pid 2>/dev/null || true' EXIT

# The trial starts when the generator agent does (after the rig is built): `agent gen`, or
# `agent xdpgen` (the default in the threads placement).
generator='xvs-bench agent (xdp)?gen '
for _ in $(seq 1 600); do
    pgrep -f "$generator" >/dev/null && break
    kill -0 $bench_pid 2>/dev/null || break
    sleep 0.05
done
pgrep -f "$generator" >/dev/null || { cat "$out/$target.throughput.txt"; echo "error: the generator never started" >&2; exit 1; }
# Skip the first half second (flows being set up), stop before the trial ends.
sleep 0.5
before=$(grep '^cpu1 ' /proc/stat)
perf record -q -a -C 1 -g -o "$data" -- sleep "$(awk "BEGIN { print $seconds - 1 }")" >/dev/null 2>&1
after=$(grep '^cpu1 ' /proc/stat)
wait $bench_pid || true
trap - EXIT

grep -E "trial|throughput|offered" "$out/$target.throughput.txt" || true
# /proc/stat counts softirq wherever it ran, idle task included, which cpu-clock sampling
# does not see (perf cannot sample inside the idle task): the busy share comes from here.
echo "== $target: CPU 1 busy (from /proc/stat: user, system, softirq, of all time)"
paste <(echo "$before" | tr ' ' '\n' | tail -n +2) <(echo "$after" | tr ' ' '\n' | tail -n +2) \
    | awk '{ d[NR] = $2 - $1; t += $2 - $1 }
           END { printf "busy %.1f%% (user %.1f%%, system %.1f%%, softirq %.1f%%)\n",
                 100 * (t - d[4] - d[5]) / t, 100 * (d[1] + d[2]) / t, 100 * d[3] / t, 100 * d[7] / t }'
echo "== $target: CPU 1 by binary (kernel and user)"
perf report -i "$data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12
echo "== $target: CPU 1 by function (self, >= 1 %)"
perf report -i "$data" --no-children --sort sym --percent-limit 1 --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -40
echo "(perf data: $data)"
