#!/usr/bin/env bash
# The Python demo's cost by mode on the GPU: ROUNDS rounds of one process
# per mode in turn (off first), each mode's cost its time a frame against
# off's in the same round, then the median and range over rounds. Processes
# on the device machines varied by a third from one to the next, so a cost
# read from fewer rounds is not a figure. 200 frames (9 s a run): in 40 the
# kernel mode's first traced frame and its detach were most of its cost.
#
# With DEADLINE_S, no round starts after that many seconds, so that a run
# on a lent machine ends with its summary rather than cut off before it.
#
#   ROUNDS=5 FRAMES=200 MODES="events kernels kernels-all" gpu/python_overhead_rounds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
FRAMES=${FRAMES:-200}
MODES=${MODES:-events kernels kernels-all}
DEADLINE_S=${DEADLINE_S:-0}
for _ in $(seq "$ROUNDS"); do
    if ((DEADLINE_S > 0 && SECONDS > DEADLINE_S)); then
        echo "the deadline of ${DEADLINE_S} s passed: no more rounds" >&2
        break
    fi
    for mode in off $MODES; do
        python gpu/python_gpu_check.py overhead "$mode" "$FRAMES" 2>/dev/null | grep "ms/frame" ||
            { echo "gpu/python_gpu_check.py overhead $mode $FRAMES failed; the rounds stop here" >&2; exit 1; }
    done
done | python3 -u -c '
import statistics, sys
rounds, costs = [], {}
for line in sys.stdin:
    print(line, end="")
    mode, ms = line.split()[0], float(line.split()[1])
    if mode == "off":
        rounds.append(ms)
    else:
        costs.setdefault(mode, []).append(100 * (ms / rounds[-1] - 1))
print(f"off: median {statistics.median(rounds):.3f} ms a frame over {len(rounds)} rounds")
for mode, c in costs.items():
    print(f"{mode}: median {statistics.median(c):+.2f}% against off in the same round (rounds {min(c):+.2f} to {max(c):+.2f}%)")
'
