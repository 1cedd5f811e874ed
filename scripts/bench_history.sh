#!/usr/bin/env bash
# `stageprof history` over 10,000 stored runs of the demo's profile (18
# stages each): the time to answer, best and median of 5.
#
#   scripts/bench_history.sh [RUNS]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000}"
tmp="${TMPDIR:-/tmp}"
work="$tmp/stageprof-bench-history"
db="$work/history-$runs.db"
bin=./target/release/stageprof

cargo build --release -q -p stageprof-cli
mkdir -p "$work"
if [ ! -f "$db" ]; then
    for side in a b; do
        [ -f "$work/$side/profile.stgp" ] || "$bin" demo --frames 2 --out "$work/$side" > /dev/null 2>&1
    done
    # Blocks of 100 runs alternate between the two profiles: steps for the change-point search.
    for ((i = 0; i < runs; i += 100)); do
        side=$([ $(( i / 100 % 2 )) -eq 0 ] && echo a || echo b)
        "$bin" history --db "$db" record $(yes "$work/$side/profile.stgp" | head -100) > /dev/null
    done
fi
echo "database: $db ($(( $(stat -c %s "$db") / 1000000 )) MB, $runs runs); machine: $(nproc) cores"
times=()
for run in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$bin" history --db "$db" > /dev/null
    times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "history answered in: best %d ms, median %d ms (of %d)\n", v[1], v[3], NR }'
