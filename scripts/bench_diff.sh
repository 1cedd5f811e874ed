#!/usr/bin/env bash
# `stageprof diff` of two ~130 MB PyTorch traces against `stageprof report`
# of each, side by side in one run (wall time and peak RSS).
#
#   scripts/bench_diff.sh [COPIES]   (default 70: about 130 MB a trace)
#
# BASE is the inference fixture (a real H200 trace) repeated COPIES times,
# NEW the same repeated COPIES + 2 times: the same pipeline, two runs.
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-70}"
tmp="${TMPDIR:-/tmp}"
base="$tmp/stageprof-diff-base-$copies.pt.trace.json"
new="$tmp/stageprof-diff-new-$copies.pt.trace.json"

cargo build --release -q -p stageprof-cli -p stageprof-readers --bins --examples
fixture=crates/stageprof-readers/tests/fixtures/inference.pt.trace.json.gz
[ -f "$base" ] || ./target/release/examples/repeat_trace "$fixture" "$copies" "$base"
[ -f "$new" ] || ./target/release/examples/repeat_trace "$fixture" "$((copies + 2))" "$new"
echo "base $(( $(stat -c %s "$base") / 1000000 )) MB, new $(( $(stat -c %s "$new") / 1000000 )) MB; machine: $(nproc) cores"
cat "$base" "$new" > /dev/null   # warm the page cache

timed() {
    /usr/bin/time -f "%e %M" -o "$tmp/bench.time" "$@" > /dev/null 2>&1
    read -r secs kb < "$tmp/bench.time"
    echo "$secs $((kb / 1024))"
}
printf '%-4s %14s %14s %14s %12s %16s\n' run "report base" "report new" "diff" "diff/both" "diff peak RSS"
for run in 1 2 3; do
    read -r rb _ < <(timed ./target/release/stageprof report "$base" --format json)
    read -r rn _ < <(timed ./target/release/stageprof report "$new" --format json)
    read -r d dm < <(timed ./target/release/stageprof diff "$base" "$new" --format json)
    ratio=$(awk -v d="$d" -v a="$rb" -v b="$rn" 'BEGIN { printf "%.2f", d / (a + b) }')
    printf '%-4s %12s s %12s s %12s s %12s %13s MB\n' "$run" "$rb" "$rn" "$d" "$ratio" "$dm"
done
