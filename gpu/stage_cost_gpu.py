"""A stage's begin + end from Python, by GPU mode: `python gpu/stage_cost_gpu.py`.

Back to back, an empty stage's begin and end share the CUDA event before
them (nothing can be launched between); 2 us apart, each stage records its
own event (its end shares its begin's, as nothing was launched inside). The
wait is timed alone and taken out.
"""
import ctypes
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


def raw_event_record_ns(n: int) -> float:
    """One cuEventRecord on torch's current stream through ctypes: the floor
    under a stage that records an event (the issue's anchor: 1.7 us on an H200)."""
    cuda = ctypes.CDLL("libcuda.so.1")
    event = ctypes.c_void_p()
    assert cuda.cuEventCreate(ctypes.byref(event), 0) == 0
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    record = cuda.cuEventRecord
    t = time.perf_counter_ns()
    for _ in range(n):
        record(event, stream)
    torch.cuda.synchronize()
    return (time.perf_counter_ns() - t) / n


print(f"cuEventRecord on torch's current stream, through ctypes: {statistics.median(raw_event_record_ns(20000) for _ in range(5)):.0f} ns")
# With GPU memory on, torch's allocator trace is on (no frames here: read in
# windows) and each edge tags its events, as in the frames it is on for.
for gpu, memory in (("off", False), ("events", False), ("events", True), ("kernels", False)):
    s = stageprof.init(out_dir=f"/tmp/sc-{gpu}", formats=["native"], gpu=gpu, gpu_memory=memory)
    run(10000, False)
    back_to_back = statistics.median(run(50000, False) for _ in range(5))
    apart = statistics.median(run(20000, True) - wait_alone(20000) for _ in range(5))
    s.finish()
    what = f"gpu={gpu}" + (", GPU memory (allocator trace on, edges tagged)" if memory else "")
    print(f"stage with {what}: {apart:.0f} ns 2 us apart, {back_to_back:.0f} ns back to back")
