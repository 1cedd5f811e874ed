"""What counting the C heap for host memory per stage (``memory=True``:
the malloc hooks of crates/stageprof-python/src/malloc_hooks.rs) costs a
malloc and its free: numpy's ``np.empty(600)`` (4,800 bytes, past
pymalloc, so from malloc) in processes with the hooks and without, in turn.

    python scripts/bench_malloc_hooks.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

CALLS = 200_000


def one_process(hooks: bool) -> float:
    """Median ns of an ``np.empty(600)`` over 9 blocks, in this process."""
    import numpy as np

    import stageprof

    with tempfile.TemporaryDirectory() as out:
        session = stageprof.init(out_dir=out, formats=["native"], gpu="off", memory=hooks)

        def block() -> float:
            t = time.perf_counter_ns()
            for _ in range(CALLS):
                np.empty(600)
            return (time.perf_counter_ns() - t) / CALLS

        block()
        ns = statistics.median(block() for _ in range(9))
        session.finish()
    return ns


def main() -> None:
    if sys.argv[1:2] in (["hooks"], ["nohooks"]):
        print(one_process(sys.argv[1] == "hooks"))
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    costs = []
    for _ in range(rounds):
        ns = {m: float(subprocess.check_output([sys.executable, __file__, m], text=True)) for m in ("nohooks", "hooks")}
        costs.append(ns["hooks"] - ns["nohooks"])
        print(f"np.empty(600): without hooks {ns['nohooks']:.1f} ns, with {ns['hooks']:.1f} ns ({costs[-1]:+.1f} ns)")
    print(f"a malloc + free counted: median {statistics.median(costs):+.1f} ns over {rounds} rounds")


if __name__ == "__main__":
    main()
