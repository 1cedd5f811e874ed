"""What telling torch's allocator trace of each stage edge costs a stage
from Python, apart from torch's own setter (`bool` stands in for it: a C
function taking one argument). No GPU needed; on a GPU, gpu/stage_cost_gpu.py
times the same with torch's setter and CUDA events.

    python scripts/bench_edge_tags.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import ContextManager

import stageprof

ROUNDS, CALLS = 7, 100_000


def per_stage(stage: ContextManager[None]) -> float:
    """Median over rounds of a `with stage:` of nothing, in ns."""

    def once() -> float:
        t = time.perf_counter_ns()
        for _ in range(CALLS):
            with stage:
                pass
        return (time.perf_counter_ns() - t) / CALLS

    once()
    return statistics.median(once() for _ in range(ROUNDS))


session = stageprof.init(out_dir=tempfile.mkdtemp(), formats=["native"], gpu="off", gpu_memory=False)
stage = stageprof.stage("x")
untagged = per_stage(stage)
session._native.tag_stage_edges(bool)
tagged = per_stage(stage)
session._native.tag_stage_edges(None)
print(f"stage begin + end: {untagged:.0f} ns untagged, {tagged:.0f} ns with both edges tagged (+{tagged - untagged:.0f} ns)")
session.finish()
