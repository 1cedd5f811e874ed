#!/usr/bin/env bash
# stageprof report against HolisticTraceAnalysis 0.5.0 on the same PyTorch
# trace, side by side in one run: wall time and peak RSS of each.
#
#   scripts/bench_vs_hta.sh [COPIES]   (default 70: about 130 MB)
#
# The trace is the inference fixture (a real H200 trace) repeated COPIES
# times with shifted timestamps, in Kineto's own layout. HTA is installed in
# a virtual environment under $TMPDIR (pip, from PyPI) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-70}"
tmp="${TMPDIR:-/tmp}"
venv="$tmp/stageprof-hta-venv"
# shellcheck source=scripts/bench_trace.sh
. scripts/bench_trace.sh
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q holistictraceanalysis==0.5.0
fi
size_mb=$(( $(stat -c %s "$trace") / 1000000 ))
echo "trace: $trace ($size_mb MB), machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

hta_script='
import sys
from hta.trace_analysis import TraceAnalysis
a = TraceAnalysis(trace_dir=sys.argv[1])
a.get_temporal_breakdown(visualize=False)
a.get_gpu_kernel_breakdown(visualize=False)
'
printf '%-10s %-4s %10s %14s\n' tool run "wall (s)" "peak RSS (MB)"
for run in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$tmp/sp.time" ./target/release/stageprof report "$trace" --format json > /dev/null 2>&1
    read -r sp_wall sp_rss < "$tmp/sp.time"
    printf '%-10s %-4s %10s %14s\n' stageprof "$run" "$sp_wall" "$((sp_rss / 1024))"
    /usr/bin/time -f "%e %M" -o "$tmp/hta.time" "$venv/bin/python" -c "$hta_script" "$trace_dir" > /dev/null 2>&1
    read -r hta_wall hta_rss < "$tmp/hta.time"
    printf '%-10s %-4s %10s %14s\n' HTA "$run" "$hta_wall" "$((hta_rss / 1024))"
    echo "ratio run $run: HTA / stageprof wall = $(python3 -c "print(round($hta_wall / max($sp_wall, 0.001), 1))")x; stageprof throughput $(python3 -c "print(round($size_mb / max($sp_wall, 0.001)))") MB/s"
done
