"""What stageprof.Queue costs against queue.Queue: a put + get pair on one
thread, with no session and with one recording, each against a
queue.Queue timed right beside it (best of 9 runs of 20,000 pairs).

    python python/bench/bench_queue.py
"""

from __future__ import annotations

import queue
import tempfile
import timeit
from typing import Any

import stageprof


def pair_ns(q: Any) -> float:
    def pair() -> None:
        q.put(1)
        q.get()

    return min(timeit.repeat(pair, number=20000, repeat=9)) / 20000 * 1e9


def main() -> None:
    plain: queue.Queue[int] = queue.Queue()
    ours: stageprof.Queue[int] = stageprof.Queue("bench")
    base, off = pair_ns(plain), pair_ns(ours)
    session = stageprof.init(out_dir=tempfile.mkdtemp(), formats=["native"])
    on, base_on = pair_ns(ours), pair_ns(plain)
    session.finish()
    print(f"no session: queue.Queue {base:.0f} ns, stageprof.Queue {off:.0f} ns ({off / base:.2f}x)")
    print(f"recording:  queue.Queue {base_on:.0f} ns, stageprof.Queue {on:.0f} ns ({on / base_on:.2f}x)")


if __name__ == "__main__":
    main()
