"""What counting the C heap costs code that allocates a lot: the same
allocation-heavy loop in fresh interpreters, with per-stage host memory on
(the malloc hooks installed) and off, rounds interleaved.

    python python/bench/bench_heap.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

WORK = """
import time, numpy as np, stageprof
stageprof.init(out_dir={out!r}, formats=["native"], memory={memory})
start = time.perf_counter()
with stageprof.stage("allocate"):
    for _ in range(200_000):
        b = bytes(2048)          # a Python object from malloc
        a = np.empty(64)         # a small numpy array
        l = [None] * 100         # a list's item array
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for memory in (True, False):
            out = tempfile.mkdtemp(prefix="stageprof-heap-")
            code = WORK.format(out=out, memory=memory)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[memory].append(float(done.stdout.strip()))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        "200,000 iterations, each allocating and freeing a 2 KiB bytes, a 64-float numpy array and a "
        f"100-item list: memory on {on:.3f} s, off {off:.3f} s (medians of {args.rounds}), ratio {on / off:.3f}"
    )


if __name__ == "__main__":
    main()
