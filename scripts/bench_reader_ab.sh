#!/usr/bin/env bash
# `stageprof report` of the same PyTorch trace by this checkout and by an
# older commit, interleaved in one run (the machines are shared and noisy):
# wall time and peak RSS per round, their medians, and the ratio.
#
#   scripts/bench_reader_ab.sh OLD_COMMIT [ROUNDS] [COPIES]   (defaults 9, 70: about 130 MB)
#
# The trace is the one scripts/bench_vs_hta.sh reads (the inference fixture
# repeated COPIES times). The older commit is built in a worktree under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
old="${1:?usage: $0 OLD_COMMIT [ROUNDS] [COPIES]}"
rounds="${2:-9}"
copies="${3:-70}"
tmp="${TMPDIR:-/tmp}"
old_tree="$tmp/stageprof-ab-$old"
# shellcheck source=scripts/bench_trace.sh
. scripts/bench_trace.sh
[ -d "$old_tree" ] || git worktree add -q "$old_tree" "$old"
(cd "$old_tree" && CARGO_TARGET_DIR="$old_tree/target" cargo build --release -q -p stageprof-cli)

echo "trace: $trace ($(( $(stat -c %s "$trace") / 1000000 )) MB), $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
results="$tmp/stageprof-ab.txt"
: > "$results"
for round in $(seq "$rounds"); do
    for side in old new; do
        bin=./target/release/stageprof
        [ "$side" = old ] && bin="$old_tree/target/release/stageprof"
        /usr/bin/time -f "%e %M" -o "$tmp/ab.time" "$bin" report "$trace" --format json > /dev/null 2>&1
        read -r wall rss < "$tmp/ab.time"
        echo "$side $round $wall $rss" | tee -a "$results"
    done
done
python3 - "$results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {side: (statistics.median(float(r[2]) for r in rows if r[0] == side),
              statistics.median(int(r[3]) for r in rows if r[0] == side) / 1024) for side in ("old", "new")}
for side, (wall, rss) in med.items():
    print(f"{side}: median wall {wall:.3f} s, median peak RSS {rss:.1f} MB")
print(f"new / old: wall {med['new'][0] / med['old'][0]:.3f}, peak RSS {med['new'][1] / med['old'][1]:.3f}")
EOF
