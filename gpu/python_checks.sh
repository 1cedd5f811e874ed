#!/usr/bin/env bash
# Every GPU check of the Python package in one command, on a machine with an
# NVIDIA GPU, torch and stageprof installed: each figure against its ground
# truth (gpu/python_gpu_check.py's checks), then the demo's cost by mode
# (frame by frame, and in interleaved rounds). A failed check is named at
# the end; the ones after it still run, so that none goes unrun for long.
#
#   OUT=dir gpu/python_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-python-gpu-check-out}
mkdir -p "$OUT"
failed=()
for check in accuracy bounded stream-switch handover ranks; do
    echo "== $check"
    python gpu/python_gpu_check.py "$check" "$OUT/$check" || failed+=("$check")
done
echo "== cost frame by frame (events, and the hand-made way)"
python gpu/python_gpu_check.py paired events,by-hand 150 || failed+=(paired)
echo "== cost in interleaved rounds"
bash gpu/python_overhead_rounds.sh || failed+=(rounds)
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}"
    exit 1
fi
