"""``stageprof.sweep``: one callable run at several batch sizes, each in a
session of its own, and what each size costs: time and throughput, every
stage's time per call, memory, and sizes that did not fit.

It answers the planning notes' batch-size questions: which size is
fastest, and past which size memory grows without speed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from . import _session, frame

# A larger size counts as faster only above this gain; memory counts as grown above this.
SPEED_GAIN = 0.05
MEMORY_GROWTH = 0.10


@dataclass
class SweepPoint:
    """What one batch size cost."""

    batch_size: int
    #: Median seconds per call over the repeats (None: the size did not run).
    seconds: Optional[float] = None
    #: Items per second: the items a call handles (the batch size unless said otherwise) / seconds.
    throughput: Optional[float] = None
    #: Each stage's mean time per call in this size's run, in ms, by path ("a/b").
    stage_ms: Dict[str, float] = field(default_factory=dict)
    #: The torch CUDA allocator's peak above its level at each call's start (the largest over repeats).
    gpu_peak_bytes: Optional[int] = None
    #: Each stage's GPU memory peak above its level at the stage's start, by
    #: path ("a/b"), from stageprof's report (torch's allocator trace; the
    #: largest over the calls it covered).
    stage_gpu_peak_bytes: Dict[str, int] = field(default_factory=dict)
    #: The largest heap peak of the callable's outermost stages (all threads'
    #: heap where measured), from stageprof's report.
    host_peak_bytes: Optional[int] = None
    #: What the callable returned about itself (a mapping of numbers), from the last repeat.
    extra: Dict[str, float] = field(default_factory=dict)
    #: Why the size did not run: out of memory, or a smaller size did not fit.
    error: Optional[str] = None


@dataclass
class SweepResult:
    """Every size's point, the fastest size, and the size past which memory grows without speed."""

    points: List[SweepPoint]
    best: Optional[int]
    memory_without_speed: Optional[int]

    def __str__(self) -> str:
        extras = sorted({k for p in self.points for k in p.extra})
        header = ["batch size", "s/call", "items/s", "GPU peak", "heap peak", *extras]
        rows = [header]
        for p in self.points:
            if p.error is None:
                rows.append(
                    [
                        str(p.batch_size),
                        f"{p.seconds:.4f}" if p.seconds is not None else "-",
                        f"{p.throughput:.1f}" if p.throughput is not None else "-",
                        _mib(p.gpu_peak_bytes),
                        _mib(p.host_peak_bytes),
                        *(f"{p.extra[k]:.4g}" if k in p.extra else "-" for k in extras),
                    ]
                )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        # Sizes that did not run, after the table: their reasons are sentences.
        lines += [f"{str(p.batch_size).rjust(widths[0])}  {p.error}" for p in self.points if p.error is not None]
        if self.best is not None:
            lines.append(f"fastest: batch size {self.best}")
        if self.memory_without_speed is not None:
            lines.append(f"past batch size {self.memory_without_speed}, memory grows without speed")
        return "\n".join(lines)


def _mib(b: Optional[int]) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def _torch_cuda() -> Any:
    """torch.cuda when torch is loaded and has CUDA up, else None."""
    cuda = sys.modules.get("torch.cuda")
    return cuda if cuda is not None and cuda.is_initialized() else None


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "out of memory" in str(e).lower()


def sweep(
    fn: Callable[[int], Any],
    batch_sizes: Sequence[int],
    repeats: int = 3,
    warmup: int = 1,
    out_dir: str = "stageprof-out/sweep",
    items_per_call: Optional[float] = None,
    **settings: Any,
) -> SweepResult:
    """Runs ``fn(batch_size)`` for each size: ``warmup`` calls, then ``repeats``
    calls in a session of its own (``<out_dir>/batch-<size>``, ``settings`` as
    for ``init``), one frame each. A size that runs out of memory (MemoryError,
    torch's OutOfMemoryError) is a result, and the larger sizes after it are
    not tried. If ``fn`` returns a mapping of numbers, the last repeat's is kept.
    Throughput is items a second, a call handling ``items_per_call`` items
    (default: the batch size)."""
    if _session.current() is not None:
        raise RuntimeError("stageprof.sweep runs a session per batch size: finish the running session first")
    if repeats < 1 or warmup < 0:
        raise ValueError("sweep() needs repeats >= 1 and warmup >= 0")
    points: List[SweepPoint] = []
    failed_at: Optional[int] = None
    for size in batch_sizes:
        if failed_at is not None:
            points.append(SweepPoint(size, error=f"not tried: batch size {failed_at} did not fit"))
            continue
        items = float(size) if items_per_call is None else items_per_call
        point = _run_size(fn, size, items, repeats, warmup, os.path.join(out_dir, f"batch-{size}"), settings)
        points.append(point)
        if point.error is not None:
            failed_at = size
    ran = sorted((p for p in points if p.throughput is not None), key=lambda p: p.batch_size)
    best = max(ran, key=lambda p: p.throughput or 0.0).batch_size if ran else None
    return SweepResult(points, best, _memory_without_speed(ran))


def _run_size(
    fn: Callable[[int], Any], size: int, items: float, repeats: int, warmup: int, out: str, settings: Mapping[str, Any]
) -> SweepPoint:
    point = SweepPoint(size)
    # Warm-up in a session that records nothing, so that its stages are not
    # counted, nor warned about.
    warming = _session.init(out_dir=out, enabled=False)
    try:
        for _ in range(warmup):
            fn(size)
    except BaseException as e:
        if not _out_of_memory(e):
            raise
        return _failed(point, e)
    finally:
        warming.finish()
    session = _session.init(out_dir=out, **{"formats": ["summary", "native"], **settings})
    seconds: List[float] = []
    gpu_peaks: List[int] = []
    try:
        for _ in range(repeats):
            cuda = _torch_cuda()
            if cuda is not None:
                cuda.synchronize()
                cuda.reset_peak_memory_stats()
                level = cuda.memory_allocated()
            start = time.perf_counter()
            with frame():
                returned = fn(size)
                if cuda is not None:
                    cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            if cuda is not None:
                gpu_peaks.append(cuda.max_memory_allocated() - level)
            if isinstance(returned, Mapping):
                point.extra = {str(k): float(v) for k, v in returned.items()}
    except BaseException as e:
        if not _out_of_memory(e):
            session.finish("exception")
            raise
        session.finish("exception")
        return _failed(point, e)
    report = session.finish()
    point.seconds = statistics.median(seconds)
    point.throughput = items / point.seconds if point.seconds > 0 else None
    point.stage_ms = {"/".join(s["path"]): s["mean_ns"] / 1e6 for s in report.stages}
    point.gpu_peak_bytes = max(gpu_peaks) if gpu_peaks else None
    point.stage_gpu_peak_bytes = {
        "/".join(s["path"]): s["gpu_mem_peak_bytes"] for s in report.stages if s["gpu_mem_peak_bytes"] is not None
    }
    peaks = [s["mem_peak_bytes"] for s in report.stages if s["depth"] == 0 and s["mem_peak_bytes"] is not None]
    point.host_peak_bytes = max(peaks) if peaks else None
    return point


def _failed(point: SweepPoint, e: BaseException) -> SweepPoint:
    cuda = _torch_cuda()
    if cuda is not None:
        cuda.empty_cache()
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    point.error = f"out of memory: {first_line[:80].rstrip()}"
    return point


def _memory_without_speed(ran: List[SweepPoint]) -> Optional[int]:
    """The smallest size after which no larger size is faster by more than
    SPEED_GAIN, while the largest holds more memory by more than MEMORY_GROWTH."""

    def memory(q: SweepPoint) -> Optional[int]:
        return q.gpu_peak_bytes if q.gpu_peak_bytes is not None else q.host_peak_bytes

    for i, p in enumerate(ran[:-1]):
        later = ran[i + 1 :]
        faster = any((q.throughput or 0.0) > (p.throughput or 0.0) * (1 + SPEED_GAIN) for q in later)
        mine, largest = memory(p), memory(later[-1])
        if not faster and mine is not None and largest is not None and largest > mine * (1 + MEMORY_GROWTH):
            return p.batch_size
    return None
