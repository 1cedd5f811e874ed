"""GPU figures of stages recorded from Python, against independent
measurements, on a machine with an NVIDIA GPU and torch:

  accuracy  each stage's GPU time (stageprof's CUDA events) against
            torch.cuda.Event pairs placed by hand around the same stages in
            a separate run; kernel counts against a torch.profiler trace of
            the same work (kernels joined to their launches by correlation
            id, counted inside the record_function range of the same name);
            each stage's GPU memory peak and net (from the allocator's trace)
            against torch.cuda.max_memory_allocated / memory_allocated read
            around the stage in a separate run, on a script of known work and
            on the Python demo
  bounded   the same GPU time and memory checks on a bounded run
            (max_disk_mb), whose figures are joined while recording, and a
            run of many small stages whose raw events outgrow the bound
  overhead  the Python demo's pipeline on the GPU, unprofiled against
            stageprof (events and kernels, each with GPU memory), against
            torch.profiler, and against the hand-made way (a torch.cuda.Event
            pair and memory_allocated() around each stage), rounds
            interleaved, one process per run

    python gpu/python_gpu_check.py accuracy OUT_DIR
    python gpu/python_gpu_check.py bounded OUT_DIR   (the same figures summed up while recording, max_disk_mb)
    python gpu/python_gpu_check.py stream-switch OUT_DIR
    python gpu/python_gpu_check.py handover OUT_DIR   (CUPTI between stageprof and torch.profiler in one process)
    python gpu/python_gpu_check.py ranks OUT_DIR   (two torch.distributed ranks, a profile each, the straggler named)
    python gpu/python_gpu_check.py interleaved MODE,MODE,... FRAMES ROUNDS   (modes without CUPTI, in one process)
    python gpu/python_gpu_check.py paired MODE,MODE,... FRAMES   (on and off frame by frame: events, events-nomem, bounded, by-hand)
    python gpu/python_gpu_check.py overhead MODE FRAMES    (MODE: off, events, kernels, kernels-all, torch, by-hand;
                                                           events-nomem, kernels-nomem: without GPU memory)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List

import torch

import stageprof
from stageprof import _allocator_trace, _torch

STAGES = ("matmul", "elementwise", "reduce")


def work(a: torch.Tensor, stage: Callable[[str], Any]) -> None:
    """Known work in three stages: 4 matmuls, 10 elementwise passes, one reduction."""
    with stage("matmul"):
        x = a
        for _ in range(4):
            x = x @ a
    with stage("elementwise"):
        y = a
        for _ in range(10):
            y = y * 1.0001 + 0.5
    with stage("reduce"):
        y.sum(dim=0)


class MemoryTruth:
    """A stage's GPU memory by the allocator's own counters: peak above the
    level at its start (max_memory_allocated) and net (memory_allocated),
    read around it. Nested stages share the one peak counter: at every
    begin and end, each open stage takes the peak so far and the counter is
    reset, so each stage's peak is the highest of its pieces."""

    open: List[List[Any]] = []  # [path, level at start, highest level seen]
    peak: Dict[str, int] = defaultdict(int)
    net: Dict[str, int] = defaultdict(int)

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def _take_peak(cls) -> None:
        highest = torch.cuda.max_memory_allocated()
        for entry in cls.open:
            entry[2] = max(entry[2], highest)
        torch.cuda.reset_peak_memory_stats()

    def __enter__(self) -> None:
        MemoryTruth._take_peak()
        path = f"{MemoryTruth.open[-1][0]}/{self.name}" if MemoryTruth.open else self.name
        level = torch.cuda.memory_allocated()
        MemoryTruth.open.append([path, level, level])

    def __exit__(self, *exc: object) -> None:
        MemoryTruth._take_peak()
        path, start, highest = MemoryTruth.open.pop()
        MemoryTruth.peak[path] = max(MemoryTruth.peak[path], highest - start)
        MemoryTruth.net[path] += torch.cuda.memory_allocated() - start


def compare_memory(what: str, stages: List[Dict[str, Any]]) -> bool:
    """Each stage's GPU memory figures against MemoryTruth's; within 1%
    (a net that is near zero: within 1% of the stage's peak)."""
    ok = True
    print(f"{what}: GPU memory per stage, stageprof (allocator trace) against max_memory_allocated/memory_allocated")
    print(f"  {'stage':<44} {'peak by hand':>14} {'stageprof':>14} {'net by hand':>14} {'stageprof':>14}")
    mine = {"/".join(s["path"]): s for s in stages}
    for path in sorted(MemoryTruth.peak):
        s = mine.get(path, {})
        peak, net = s.get("gpu_mem_peak_bytes"), s.get("gpu_mem_net_bytes")
        tp, tn = MemoryTruth.peak[path], MemoryTruth.net[path]
        good = (
            peak is not None
            and net is not None
            and abs(peak - tp) <= 0.01 * tp
            and abs(net - tn) <= 0.01 * max(abs(tn), tp)
        )
        ok &= good
        print(f"  {path:<44} {tp:>14} {peak!s:>14} {tn:>14} {net!s:>14}  {'ok' if good else 'OFF'}")
    MemoryTruth.peak.clear()
    MemoryTruth.net.clear()
    return ok


def by_hand(a: torch.Tensor, frames: int) -> Dict[str, float]:
    """GPU ms per stage of the known work, summed over frames, from torch.cuda.Event pairs on the current stream."""

    def frames_of_work(stage: Callable[[str], Any]) -> None:
        for _ in range(frames):
            work(a, stage)

    return by_hand_once(frames_of_work)


def kernels_in_torch_trace(path: str) -> Dict[str, int]:
    """Kernels launched inside each record_function range, from the raw trace."""
    events = json.load(open(path))["traceEvents"]
    ranges = [e for e in events if e.get("cat") == "user_annotation" and e.get("name") in STAGES]
    launches = {}
    for e in events:
        if e.get("cat") == "cuda_runtime" and "correlation" in e.get("args", {}):
            launches[e["args"]["correlation"]] = e
    counts: Dict[str, int] = defaultdict(int)
    for k in events:
        if k.get("cat") != "kernel":
            continue
        launch = launches.get(k.get("args", {}).get("correlation"))
        if launch is None:
            continue
        for r in ranges:
            if r["tid"] == launch["tid"] and r["ts"] <= launch["ts"] <= r["ts"] + r["dur"]:
                counts[r["name"]] += 1
    return dict(counts)


def accuracy(out: str) -> int:
    # Every frame's GPU memory traced (by default only as many as keep the reading under 1%).
    from stageprof import _allocator_trace, _torch

    _allocator_trace.COST_SHARE = 1.0
    torch.manual_seed(0)
    a = torch.randn(4096, 4096, device="cuda")
    frames = 20
    for _ in range(3):
        work(a, lambda name: torch.profiler.record_function(name))  # warm-up
    torch.cuda.synchronize()
    truth = by_hand(a, frames)

    # torch.profiler in a process of its own: CUPTI takes one subscriber per process.
    os.makedirs(out, exist_ok=True)
    trace = f"{out}/torch_trace.json"
    subprocess.run([sys.executable, __file__, "torch-trace", trace, str(frames)], check=True)
    counted = kernels_in_torch_trace(trace)

    session = stageprof.init(out_dir=f"{out}/stageprof", gpu="kernels")
    # Under CUPTI a kernel's first launch stalls for milliseconds (it is instrumented): once outside the frames.
    work(a, lambda name: contextlib.nullcontext())
    torch.cuda.synchronize()
    for _ in range(frames):
        with stageprof.frame():
            work(a, stageprof.stage)
    torch.cuda.synchronize()
    report = session.finish()
    stages = {s["name"]: s for s in report.stages}

    # GPU memory by hand, in a run of its own (the counters' reads cost 87 us each).
    for _ in range(frames):
        work(a, MemoryTruth)
    ok = compare_memory("known work", report.stages)
    ok &= demo_memory(out)

    # Kernels are traced in some frames (as many as keep the cost within its share): each stage's
    # kernels over its traced calls must be torch.profiler's over all of its calls.
    print(f"frames with kernels traced: {report.summary['frames']['gpu_traced']} of {frames}")
    print(f"{'stage':<12} {'events by hand':>15} {'stageprof':>12} {'diff':>8}   {'kernels a call (torch.profiler)':>31} {'stageprof':>10}")
    for name in STAGES:
        s = stages[name]
        mine = (s["gpu_event_ns"] or 0) / 1e6
        diff = 100 * (mine / truth[name] - 1)
        kernels, traced = s["gpu_kernels"], s["gpu_traced_calls"]
        theirs = counted.get(name, 0) / frames
        # The 2% bound holds for stages of 1 ms or more (the issue's criterion).
        good = (abs(diff) <= 2.0 or truth[name] < 1.0) and bool(traced) and kernels == theirs * traced
        ok &= good
        per_call = f"{kernels / traced:g} ({traced} traced)" if traced else "none traced"
        print(
            f"{name:<12} {truth[name]:>12.3f} ms {mine:>9.3f} ms {diff:>+7.2f}%   {theirs:>31g} {per_call:>10}"
            f"  {'ok' if good else 'OFF'}"
        )
    print(f"GPU busy per stage (kernels): " + ", ".join(f"{n} {stages[n]['gpu_busy_ns'] / 1e6:.3f} ms" for n in STAGES if stages[n]["gpu_busy_ns"]))
    return 0 if ok else 1


def compare_events(what: str, truth: Dict[str, float], stages: Dict[str, Any]) -> bool:
    """Each stage's GPU time (stageprof's events) against events by hand: within 2% for stages of 1 ms or more."""
    ok = True
    print(f"{what}: {'stage':<12} {'events by hand':>15} {'stageprof':>12} {'diff':>8}")
    for name in truth:
        mine = (stages[name]["gpu_event_ns"] or 0) / 1e6
        diff = 100 * (mine / truth[name] - 1)
        good = abs(diff) <= 2.0 or truth[name] < 1.0
        ok &= good
        print(f"{what}: {name:<12} {truth[name]:>12.3f} ms {mine:>9.3f} ms {diff:>+7.2f}%  {'ok' if good else 'OFF'}")
    return ok


def bounded(out: str) -> int:
    """A bounded run (max_disk_mb): its GPU figures are joined while it
    records (each call held back until its event time and the allocator's
    levels up to its end are in). The known work and the Python demo
    against events by hand and the allocator's counters, as in `accuracy`;
    then 400 frames of 50 small stages, whose raw events outgrow a 1 MB
    bound: every call counted, GPU time per stage against events by hand
    over the same work, the parts on disk under the bound."""
    from stageprof import _allocator_trace, _torch

    _allocator_trace.COST_SHARE = 1.0
    torch.manual_seed(0)
    a = torch.randn(4096, 4096, device="cuda")
    frames = 20
    for _ in range(3):
        work(a, lambda name: torch.profiler.record_function(name))
    torch.cuda.synchronize()
    truth = by_hand(a, frames)
    session = stageprof.init(out_dir=f"{out}/bounded", gpu="events", max_disk_mb=1)
    for _ in range(frames):
        with stageprof.frame():
            work(a, stageprof.stage)
    torch.cuda.synchronize()
    report = session.finish()
    ok = report.summary.get("raw_events_kept") is not None
    ok &= compare_events("known work, bounded", truth, {s["name"]: s for s in report.stages})
    for _ in range(frames):
        work(a, MemoryTruth)
    ok &= compare_memory("known work, bounded", report.stages)
    ok &= demo_memory(out, max_disk_mb=1)

    # Matmuls of about 40 us: the GPU stays behind the host, so a stage's
    # events time its kernel, not the host's launch cost (which differs by hand).
    small, product = torch.randn(1024, 1024, device="cuda"), torch.empty(1024, 1024, device="cuda")
    small_frames, per_frame = 400, 50

    def small_work(stage: Callable[[str], Any]) -> None:
        for i in range(per_frame):
            with stage(f"small{i % 5}"):
                torch.mm(small, small, out=product)

    def frames_of_small_work(stage: Callable[[str], Any]) -> None:
        for _ in range(small_frames):
            small_work(stage)

    many_truth = by_hand_once(frames_of_small_work)
    session = stageprof.init(out_dir=f"{out}/bounded-many", gpu="events", max_disk_mb=1, formats=["native", "summary"])
    for _ in range(small_frames):
        with stageprof.frame():
            small_work(stageprof.stage)
    torch.cuda.synchronize()
    report = session.finish()
    stages = {s["name"]: s for s in report.stages}
    calls = sum(s["calls"] for s in report.stages)
    kept = report.summary["raw_events_kept"]
    on_disk = sum(os.path.getsize(p["path"]) for p in kept["parts"])
    fits = calls == small_frames * per_frame and kept["parts_written"] > len(kept["parts"]) and on_disk <= kept["limit_bytes"] * 5 // 4
    ok &= fits
    print(
        f"many small stages, bounded: {calls} calls (expected {small_frames * per_frame}), {kept['parts_written']} parts written,"
        f" {len(kept['parts'])} kept, {on_disk} bytes on disk (bound {kept['limit_bytes']})  {'ok' if fits else 'OFF'}"
    )
    for name in sorted(many_truth):
        mine = (stages[name]["gpu_event_ns"] or 0) / 1e6
        diff = 100 * (mine / many_truth[name] - 1)
        # Separate runs of 4,000 kernels each: 5%.
        good = abs(diff) <= 5.0
        ok &= good
        print(f"many small stages, bounded: {name} by hand {many_truth[name]:.3f} ms, stageprof {mine:.3f} ms {diff:+.2f}%  {'ok' if good else 'OFF'}")
    return 0 if ok else 1


def by_hand_once(run: Callable[[Callable[[str], Any]], None]) -> Dict[str, float]:
    """GPU ms per stage name of one call of ``run``, from torch.cuda.Event pairs."""
    pairs: Dict[str, List[Any]] = defaultdict(list)

    class Timed:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            self.start = torch.cuda.Event(enable_timing=True)
            self.start.record()

        def __exit__(self, *exc: object) -> None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            pairs[self.name].append((self.start, end))

    run(Timed)
    torch.cuda.synchronize()
    return {name: sum(s.elapsed_time(e) for s, e in ps) for name, ps in pairs.items()}


def stream_switch(out: str) -> int:
    """A stage that begins on the default stream and ends on a side stream
    that runs long work: timed to the later end (the side stream's), against
    events placed by hand the same way, and named in a warning."""
    a = torch.randn(4096, 4096, device="cuda")
    side = torch.cuda.Stream()
    torch.cuda.synchronize()

    def switching(stage: Any) -> None:
        stage.__enter__()
        switch = torch.cuda.stream(side)
        switch.__enter__()
        x = a
        for _ in range(8):
            x = x @ a
        stage.__exit__(None, None, None)
        switch.__exit__(None, None, None)

    hand = ByHand("switching")
    for _ in range(2):  # the first on the side stream sets cuBLAS up there
        switching(hand)
        torch.cuda.synchronize()
    truth = hand.start.elapsed_time(hand.end)
    session = stageprof.init(out_dir=f"{out}/stream-switch", gpu="events", gpu_memory=False, formats=["summary"])
    switching(stageprof.stage("switching"))
    torch.cuda.synchronize()
    report = session.finish()
    mine = (report.stages[0]["gpu_event_ns"] or 0) / 1e6
    warnings = [w for w in report.summary["warnings"] if "another CUDA stream" in str(w)]
    good = abs(mine / truth - 1) <= 0.02 and len(warnings) == 1
    print(f"stream switch: by hand {truth:.3f} ms, stageprof {mine:.3f} ms; warning: {warnings}  {'ok' if good else 'OFF'}")
    return 0 if good else 1


def handover(out: str) -> int:
    """CUPTI passed between stageprof and torch.profiler in one process:
    stageprof's kernels, then torch.profiler's, then stageprof's again, each
    counting the known work's kernels; then stageprof started inside a
    running torch.profiler: its events go on, it says what is missing, and
    its stages are ranges of the torch trace holding their kernels."""
    a = torch.randn(4096, 4096, device="cuda")
    frames = 5
    for _ in range(3):
        work(a, lambda name: torch.profiler.record_function(name))
    torch.cuda.synchronize()
    expected = {"matmul": 4 * frames, "elementwise": 20 * frames, "reduce": frames}

    def stageprof_kernels(tag: str) -> Dict[str, Any]:
        # Kernels traced in every frame: this checks CUPTI changing hands, not which frames are traced.
        session = stageprof.init(out_dir=f"{out}/{tag}", gpu="kernels", kernel_every=1, formats=["summary"])
        for _ in range(frames):
            with stageprof.frame():
                work(a, stageprof.stage)
        torch.cuda.synchronize()
        return {s["name"]: s for s in session.finish().stages}

    def torch_counts(tag: str, run: Callable[[], None]) -> Dict[str, int]:
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=activities) as prof:
            run()
            torch.cuda.synchronize()
        prof.export_chrome_trace(f"{out}/{tag}.json")
        return kernels_in_torch_trace(f"{out}/{tag}.json")

    ok = True

    def events_present(stages: Dict[str, Any]) -> bool:
        return all(stages[n]["gpu_event_ns"] for n in STAGES)

    def check(what: str, counts: Dict[str, Any]) -> None:
        nonlocal ok
        good = counts == expected
        ok &= good
        print(f"handover: {what}: kernels {counts} (expected {expected})  {'ok' if good else 'OFF'}")

    first = stageprof_kernels("first")
    check("stageprof first", {n: first[n]["gpu_kernels"] for n in STAGES})

    def plain() -> None:
        for _ in range(frames):
            work(a, lambda name: torch.profiler.record_function(name))

    check("torch.profiler after stageprof", torch_counts("torch-after", plain))
    again = stageprof_kernels("again")
    counts = {n: again[n]["gpu_kernels"] for n in STAGES}
    if counts == expected:
        check("stageprof after torch.profiler", counts)
    else:
        # The known limit (docs/benchmarks.md): Kineto keeps its CUPTI subscriber after its session.
        # Then stageprof has said so in one line, traces no kernel and keeps its CUDA-event times.
        events = events_present(again)
        good = events and all(v is None for v in counts.values())
        ok &= good
        print(
            f"handover: stageprof after torch.profiler: CUPTI still held by Kineto, kernels {counts}, "
            f"GPU events per stage {'present' if events else 'MISSING'}  {'limit' if good else 'OFF'}"
        )

    inside: Dict[str, Any] = {}

    def stageprof_inside() -> None:
        inside.update(stageprof_kernels("inside"))

    check("stageprof's stages in the torch trace around it", torch_counts("torch-around", stageprof_inside))
    events = events_present(inside)
    ok &= events
    kernels = {n: inside[n]["gpu_kernels"] for n in STAGES}
    print(f"handover: stageprof inside torch.profiler: GPU events per stage {'present' if events else 'MISSING'}, kernels {kernels}")
    return 0 if ok else 1


def torch_trace(path: str, frames: int) -> None:
    """The known work under torch.profiler, its trace written to ``path``."""
    torch.manual_seed(0)
    a = torch.randn(4096, 4096, device="cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(frames):
            work(a, lambda name: torch.profiler.record_function(name))
        torch.cuda.synchronize()
    prof.export_chrome_trace(path)


def demo_memory(out: str, **settings: Any) -> bool:
    """The Python demo on the GPU, its GPU memory per stage against MemoryTruth in a separate run."""
    from stageprof import demo

    args = argparse.Namespace(views=4, width=320, height=240, depth_planes=48)
    cams = demo.rig(args.views, args.width, args.height)
    device = torch.device("cuda")
    frames = 3
    demo.run_frame(cams, 0, args.depth_planes, 8, device)
    torch.cuda.synchronize()
    session = stageprof.init(out_dir=f"{out}/demo", gpu="events", **settings)
    for frame in range(frames):
        with stageprof.frame():
            demo.run_frame(cams, frame, args.depth_planes, 8, device)
    report = session.finish()
    stage = stageprof.stage
    try:
        setattr(stageprof, "stage", MemoryTruth)
        for frame in range(frames):
            demo.run_frame(cams, frame, args.depth_planes, 8, device)
    finally:
        setattr(stageprof, "stage", stage)
    return compare_memory("the Python demo" + (f" {settings}" if settings else ""), report.stages)


class ByHand:
    """The hand-made way: a torch.cuda.Event pair and memory_allocated() around each stage."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = torch.cuda.Event(enable_timing=True)
        self.start.record()
        self.level = torch.cuda.memory_allocated()

    def __exit__(self, *exc: object) -> None:
        self.end = torch.cuda.Event(enable_timing=True)
        self.end.record()
        self.net = torch.cuda.memory_allocated() - self.level


OVERHEAD_OUT = "/tmp/stageprof-overhead"
# The share of the run's time the allocator trace's reading may take, as shipped.
SHARE = _allocator_trace.COST_SHARE


def overhead_block(mode: str, frames: int, run_frame: Callable[[int], None]) -> float:
    """Seconds a frame over ``frames`` frames under ``mode``; whatever the mode
    set up is torn down after (sessions finished, patches undone)."""
    profiler: Any = None
    stage = stageprof.stage
    if mode == "torch":
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        profiler = torch.profiler.profile(activities=activities, profile_memory=True, record_shapes=True)
        profiler.__enter__()
        session = stageprof.init(enabled=False)
    elif mode == "by-hand":
        setattr(stageprof, "stage", ByHand)
        session = stageprof.init(enabled=False)
    else:
        # MODE-nomem: without GPU memory per stage (no allocator trace); MODE-nohost: without host
        # memory per stage (no malloc hooks); MODE-nocounters: no GPU counter tracks (NVML, used
        # memory); MODE-halfshare: the allocator trace read within half its share of the run's
        # time; idle-MODE: the session started, recording switched off (what it costs while it
        # records nothing); cpu: no GPU figures; bounded: events, max_disk_mb; kernels-all: kernels
        # traced in every frame (kernels: in as many as keep the cost within its share).
        gpu = mode.removeprefix("idle-")
        for variant in ("-nomem", "-nohost", "-nocounters", "-halfshare", "-all"):
            gpu = gpu.removesuffix(variant)
        _allocator_trace.COST_SHARE = SHARE / 2 if mode.endswith("-halfshare") else SHARE
        bound = {"max_disk_mb": 64} if mode == "bounded" else {}
        if mode == "kernels-all":
            bound["kernel_every"] = 1
        session = stageprof.init(
            out_dir=OVERHEAD_OUT,
            formats=["native"],
            enabled=mode != "off",
            gpu="off" if mode in ("off", "cpu") else "events" if mode == "bounded" else gpu,
            gpu_memory=not mode.endswith("-nomem") and mode != "cpu",
            memory=not mode.endswith("-nohost"),
            nvml_sample_ms=0 if mode.endswith("-nocounters") else 100,
            **bound,
        )
        if mode.startswith("idle-"):
            stageprof.set_enabled(False)
    try:
        run_frame(-1)  # the mode's own start-up (events pool, first trace window) is not timed
        sync()
        start, read_before = time.perf_counter(), allocator_trace_cost_s()
        for frame in range(frames):
            with stageprof.frame():
                run_frame(frame)
        sync()
        elapsed = time.perf_counter() - start
        READ_SHARES[mode].append((allocator_trace_cost_s() - read_before) / elapsed)
        return elapsed / frames
    finally:
        if profiler is not None:
            profiler.__exit__(None, None, None)
        setattr(stageprof, "stage", stage)
        if mode.startswith("idle-"):
            stageprof.set_enabled(True)
        session.finish()


# Per mode, the share of each block's time that reading the allocator's trace took, by its own count.
READ_SHARES: Dict[str, List[float]] = defaultdict(list)


def allocator_trace_cost_s() -> float:
    reader = _torch._memory_reader
    return reader.cost_s if reader is not None else 0.0


def demo_frames() -> Callable[[int], None]:
    """The Python demo's pipeline on the GPU, one frame a call, warmed up."""
    from stageprof import demo

    args = argparse.Namespace(views=4, width=320, height=240, depth_planes=48)
    cams = demo.rig(args.views, args.width, args.height)
    # STAGEPROF_CHECK_DEVICE=cpu tries the script itself out where there is no GPU.
    device = torch.device(os.environ.get("STAGEPROF_CHECK_DEVICE", "cuda"))

    def run_frame(frame: int) -> None:
        demo.run_frame(cams, max(frame, 0), args.depth_planes, 8, device)

    run_frame(0)  # CUDA start-up, cuDNN and friends
    sync()
    return run_frame


def sync() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def overhead(mode: str, frames: int) -> None:
    """One mode in this process (modes that hold CUPTI, kernels and torch,
    need one each); for kernels, how many of the frames traced them."""
    per_frame = overhead_block(mode, frames, demo_frames())
    traced = ""
    if mode.startswith("kernels"):
        report = stageprof.read(f"{OVERHEAD_OUT}/profile.stgp").summary
        traced = f" (kernels traced in {report['frames']['gpu_traced']} of {report['frames']['count']} frames)"
    print(f"{mode} {per_frame * 1e3:.3f} ms/frame{traced}")


def overhead_interleaved(modes: List[str], frames: int, rounds: int) -> None:
    """Modes in turn in one process, ``rounds`` times: each mode's cost is
    its time a frame against ``off``'s in the same round (paired, so that
    the machine's drift between rounds cancels), the median over rounds.
    Processes of the same mode differ by up to 20% on the shared H200 host,
    more than the costs to be measured; here each block is paired with an
    ``off`` block run moments before or after it. Modes that hold CUPTI
    (kernels, torch) cannot share a process with each other."""
    run_frame = demo_frames()
    ratios: Dict[str, List[float]] = defaultdict(list)
    for r in range(rounds):
        # Each round starts with the next mode, so that no mode always runs first.
        order = ["off", *modes]
        order = order[r % len(order) :] + order[: r % len(order)]
        times = {mode: overhead_block(mode, frames, run_frame) for mode in order}
        print(f"round {r + 1}: " + ", ".join(f"{m} {t * 1e3:.3f} ms/frame" for m, t in times.items()), flush=True)
        for mode in modes:
            ratios[mode].append(times[mode] / times["off"] - 1)
    for mode in modes:
        rounds_pct = ", ".join(f"{v * 100:+.1f}%" for v in ratios[mode])
        reads = statistics.median(READ_SHARES[mode]) * 100
        print(
            f"{mode}: median {statistics.median(ratios[mode]) * 100:+.2f}% against off in the same round ({rounds_pct});"
            f" reading the allocator trace took {reads:.2f}% of the blocks' time (median)"
        )


def paired(modes: List[str], frames: int) -> None:
    """Each mode's cost on the Python demo, frame by frame: recording is
    switched on and off every other frame (``stageprof.set_enabled``; for
    by-hand, its Event pair and memory_allocated() around the stages on
    every other frame), each frame synchronized, and each frame's period
    (its start to the next one's, so that reading the allocator's trace
    after a frame counts in it) timed here. The cost is the median over on
    frames of the ratio to the mean of the off frames on either side: the
    shared machine's drift, seconds long, cancels between frames 60 ms apart.
    Kernel tracing cannot be measured this way (CUPTI, once on, traces every
    launch, recorded or not), nor torch.profiler."""
    run_frame = demo_frames()
    stage = stageprof.stage
    for mode in modes:
        if mode == "by-hand":
            session = stageprof.init(enabled=False)
        else:
            bound = {"max_disk_mb": 64} if mode == "bounded" else {}
            session = stageprof.init(
                out_dir="/tmp/stageprof-paired",
                formats=["native"],
                gpu="events",
                gpu_memory=not mode.endswith("-nomem"),
                **bound,
            )
        periods = []
        try:
            run_frame(-1)
            sync()
            began = time.perf_counter()
            for frame in range(frames + 1):
                on = frame % 2 == 1
                if mode == "by-hand":
                    setattr(stageprof, "stage", ByHand if on else stage)
                else:
                    stageprof.set_enabled(on)
                with stageprof.frame():
                    run_frame(frame)
                sync()
                now = time.perf_counter()
                periods.append((on, now - began))
                began = now
        finally:
            setattr(stageprof, "stage", stage)
            stageprof.set_enabled(True)
            session.finish()
        ratios = [
            periods[i][1] / ((periods[i - 1][1] + periods[i + 1][1]) / 2) - 1
            for i in range(1, len(periods) - 1)
            if periods[i][0]
        ]
        q = statistics.quantiles(ratios, n=4)
        off = statistics.median(p for on, p in periods if not on) * 1e3
        # The median is a typical frame's cost; the mean also carries the few frames
        # that read the allocator's trace (at most its share of the run).
        print(
            f"{mode}: median {statistics.median(ratios) * 100:+.2f}% against the off frames beside it"
            f" (quartiles {q[0] * 100:+.2f}%, {q[2] * 100:+.2f}%; mean {statistics.mean(ratios) * 100:+.2f}%;"
            f" {len(ratios)} on frames; off frames {off:.2f} ms median)",
            flush=True,
        )


RANK_FRAMES = 10


def rank_worker(rank: int, out: str) -> None:
    """One rank of a two-rank job (gloo: the ranks may share a GPU, which
    NCCL refuses): a profiled run, then the same work timed by hand, whose
    GPU ms per stage go to ``<out>/truth/rank-<rank>.json``. Rank 1 does twice
    rank 0's matmuls: the straggler."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
    torch.cuda.set_device(rank % torch.cuda.device_count())
    a = torch.randn(4096, 4096, device="cuda")
    grad = torch.ones(1 << 20, device="cuda")

    def step(stage: Callable[[str], Any]) -> None:
        with stage("forward"):
            x = a
            for _ in range(8 * (rank + 1)):
                x = x @ a
        with stage("allreduce"):
            dist.all_reduce(grad)

    step(ByHand)  # cuBLAS and gloo set up outside both measurements
    torch.cuda.synchronize()
    session = stageprof.init(out_dir=out, formats=["summary", "native"], gpu="events")
    for _ in range(RANK_FRAMES):
        with stageprof.frame():
            step(stageprof.stage)
    session.finish()
    truth: Dict[str, float] = defaultdict(float)
    for _ in range(RANK_FRAMES):
        for name, ms in by_hand_once(step).items():
            truth[name] += ms
    # Not in <out> itself: the report of <out> takes every JSON file there for a trace.
    os.makedirs(os.path.join(out, "truth"), exist_ok=True)
    with open(os.path.join(out, "truth", f"rank-{rank}.json"), "w") as f:
        json.dump(truth, f)
    dist.destroy_process_group()


def ranks(out: str) -> int:
    """Two ranks, a profile each under ``<out>/rank-<r>``: each rank's
    forward GPU time against events by hand, and the report of the
    directory naming rank 1, which does twice the work, the straggler."""
    os.makedirs(out, exist_ok=True)
    print(f"GPUs visible: {torch.cuda.device_count()} (the ranks share one where there is one)")
    workers = [subprocess.Popen([sys.executable, __file__, "rank-worker", str(r), out]) for r in (0, 1)]
    if any(w.wait(timeout=300) != 0 for w in workers):
        print("a rank failed")
        return 1
    ok = True
    for r in (0, 1):
        with open(os.path.join(out, "truth", f"rank-{r}.json")) as f:
            truth = json.load(f)
        with open(os.path.join(out, f"rank-{r}", "summary.json")) as f:
            stages = {s["path"][-1]: s for s in json.load(f)["stages"]}
        ok &= compare_events(f"rank {r}", {"forward": truth["forward"]}, stages)
    report = stageprof.read(out).summary
    forward = next(row for row in report["side_by_side"] if row["path"] == ["forward"])
    named = forward["slowest_rank"] == 1
    ok &= named
    print(f"ranks in the report {[r['rank'] for r in report['ranks']]}; slowest rank at forward: {forward['slowest_rank']} (truth 1)  {'ok' if named else 'OFF'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "ranks":
        sys.exit(ranks(sys.argv[2]))
    if sys.argv[1] == "rank-worker":
        rank_worker(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    if sys.argv[1] == "accuracy":
        sys.exit(accuracy(sys.argv[2]))
    if sys.argv[1] == "bounded":
        sys.exit(bounded(sys.argv[2]))
    if sys.argv[1] == "stream-switch":
        sys.exit(stream_switch(sys.argv[2]))
    if sys.argv[1] == "handover":
        sys.exit(handover(sys.argv[2]))
    if sys.argv[1] == "torch-trace":
        torch_trace(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "paired":
        paired(sys.argv[2].split(","), int(sys.argv[3]))
    elif sys.argv[1] == "interleaved":
        overhead_interleaved(sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]))
    else:
        overhead(sys.argv[2], int(sys.argv[3]))
