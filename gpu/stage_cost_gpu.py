"""A stage's begin + end from Python, by GPU mode: `python gpu/stage_cost_gpu.py`.

Back to back, an empty stage's begin and end share the CUDA event before
them (nothing can be launched between); 2 us apart, each stage records its
own event (its end shares its begin's, as nothing was launched inside). The
wait is timed alone and taken out.
"""
import statistics
import time

import stageprof
import torch

torch.ones(1, device="cuda")
APART_NS = 2_000


def run(n: int, apart: bool) -> float:
    t = time.perf_counter_ns()
    for _ in range(n):
        with stageprof.stage("x"):
            pass
        if apart:
            until = time.perf_counter_ns() + APART_NS
            while time.perf_counter_ns() < until:
                pass
    return (time.perf_counter_ns() - t) / n


def wait_alone(n: int) -> float:
    t = time.perf_counter_ns()
    for _ in range(n):
        until = time.perf_counter_ns() + APART_NS
        while time.perf_counter_ns() < until:
            pass
    return (time.perf_counter_ns() - t) / n


# The last: events, with each edge also tagging torch's allocator trace, as
# in the frames that trace is on for (held on here, without reading it).
for gpu, tagged in (("off", False), ("events", False), ("kernels", False), ("events", True)):
    s = stageprof.init(out_dir=f"/tmp/sc-{gpu}", formats=["native"], gpu=gpu, gpu_memory=not tagged)
    if tagged:
        s._native.tag_stage_edges(torch._C._cuda_setMemoryMetadata)
        gpu = "events, edges tagged for the allocator trace"
    run(10000, False)
    back_to_back = statistics.median(run(50000, False) for _ in range(5))
    apart = statistics.median(run(20000, True) - wait_alone(20000) for _ in range(5))
    s.finish()
    print(f"stage with gpu={gpu}: {apart:.0f} ns 2 us apart, {back_to_back:.0f} ns back to back")
