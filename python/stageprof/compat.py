"""The classes of the user's planning notes, recorded by stageprof.

Code written against the notes' GPU profiler (``GPUProfiler``,
``get_profiler``) or pipeline profiler (``PipelineProfiler``,
``ProfileReport``, ``StageProfile``, ``format_report``) runs by changing its
import to ``from stageprof.compat import ...``. Every figure comes from
stageprof's own report: the names and units are the notes', the
measurements are stageprof's (times are wall time on the host unless the
profile has GPU data; memory is the stage's peak above its start).

A report is made when it is asked for (``get_summary``, ``get_report``,
``print_*``, ``export_*``): that finishes the recording session, and the
next profiled call starts a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

from . import _session, profile as _profile, stage as _stage
from ._report import Report

F = TypeVar("F", bound=Callable[..., Any])
PathLike = Union[str, "os.PathLike[str]"]

MIB = 1024 * 1024


def _ms(ns: Optional[int]) -> float:
    return 0.0 if ns is None else ns / 1e6


class _Recording:
    """A stageprof session started on first use, finished when a report is asked for."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._session: Optional[_session.Session] = None
        self._report: Optional[Report] = None

    def ensure_started(self) -> None:
        if self._session is None or self._session.finished:
            running = _session.current()
            self._session = running if running is not None else _session.init(**self._settings)
            self._report = None

    def report(self) -> Report:
        if self._report is None:
            if self._session is None:
                self.ensure_started()
            assert self._session is not None
            self._report = self._session.finish()
        return self._report


# The GPU profiler of the notes (libs/gpu/profiler.py).


@dataclass
class ProfileSummary:
    """Aggregated figures of one operation (a stage, by name)."""

    operation: str
    call_count: int
    total_time_ms: float
    avg_time_ms: float
    min_time_ms: float
    max_time_ms: float
    std_dev_ms: float
    total_gpu_time_ms: float = 0.0
    total_cpu_time_ms: float = 0.0
    avg_memory_mb: float = 0.0
    avg_gpu_utilization: float = 0.0


class GPUProfiler:
    """``profile(operation)`` and ``profile_function(...)`` record stages;
    the summary and bottlenecks come from stageprof's report."""

    def __init__(self, enabled: bool = True, device_id: int = 0, **settings: Any) -> None:
        self.enabled = enabled
        self.device_id = device_id
        settings.setdefault("formats", ["native", "summary"])
        self._recording = _Recording(enabled=enabled, gpu_device=device_id, **settings)

    @contextlib.contextmanager
    def profile(self, operation: str, device: str = "gpu", **metadata: Any) -> Iterator[None]:
        """Records one call of ``operation`` (``device`` and ``metadata`` are accepted and not used)."""
        if not self.enabled:
            yield
            return
        self._recording.ensure_started()
        with _stage(operation):
            yield

    def profile_function(self, operation: Optional[str] = None, device: str = "gpu") -> Callable[[F], F]:
        """A decorator: each call of the function is one call of ``operation`` (default: its name)."""

        def decorate(fn: F) -> F:
            wrapped = _profile(operation or fn.__name__)(fn)

            def call(*args: Any, **kwargs: Any) -> Any:
                if self.enabled:
                    self._recording.ensure_started()
                return wrapped(*args, **kwargs)

            return _wraps(fn, call)

        return decorate

    def get_summary(self) -> Dict[str, ProfileSummary]:
        """Per operation: calls and time, in milliseconds."""
        out: Dict[str, ProfileSummary] = {}
        for s in self._recording.report().stages:
            name = _stage_key(s)
            calls = int(s["calls"])
            peak = s.get("mem_peak_bytes") or s.get("gpu_mem_peak_bytes") or 0
            busy = s.get("gpu_busy_ns")
            out[name] = ProfileSummary(
                operation=name,
                call_count=calls,
                total_time_ms=_ms(s["wall_ns"]),
                avg_time_ms=_ms(s["mean_ns"]),
                min_time_ms=_ms(s["min_ns"]),
                max_time_ms=_ms(s["max_ns"]),
                std_dev_ms=_ms(s["stddev_ns"]),
                total_gpu_time_ms=_ms(busy if busy is not None else s.get("gpu_event_ns")),
                total_cpu_time_ms=_ms(s["cpu_ns"] if s.get("cpu_ns") is not None else s["wall_ns"]),
                avg_memory_mb=peak / MIB,
                avg_gpu_utilization=(100.0 * busy / s["wall_ns"]) if busy and s["wall_ns"] else 0.0,
            )
        return out

    def get_bottlenecks(self, top_n: int = 5) -> List[ProfileSummary]:
        """The ``top_n`` operations by total time, longest first."""
        ranked = sorted(self.get_summary().values(), key=lambda p: p.total_time_ms, reverse=True)
        return ranked[:top_n]

    def print_summary(self) -> None:
        """Prints stageprof's table of the run."""
        print(self._recording.report())

    def print_bottlenecks(self, top_n: int = 5) -> None:
        """Prints the ``top_n`` operations by total time."""
        for i, p in enumerate(self.get_bottlenecks(top_n), start=1):
            print(f"[{i}] {p.operation}: {p.total_time_ms:.2f}ms ({p.call_count} calls, {p.avg_memory_mb:.1f} MB peak)")

    def export_json(self, path: PathLike) -> None:
        """Writes the summary by operation, and stageprof's own summary under ``stageprof``."""
        data = {
            "summary": {k: asdict(v) for k, v in self.get_summary().items()},
            "stageprof": self._recording.report().summary,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)


_global_profiler: Optional[GPUProfiler] = None


def get_profiler(enabled: bool = True) -> GPUProfiler:
    """The process's one ``GPUProfiler``, made on first call; ``enabled`` is set on every call."""
    global _global_profiler
    if _global_profiler is None:
        _global_profiler = GPUProfiler(enabled=enabled)
    _global_profiler.enabled = enabled
    return _global_profiler


# The pipeline profiler of the notes (aquamvs.profiling).


@dataclass
class StageProfile:
    """One stage's time (ms) and peak memory (MB) above its start."""

    name: str
    cpu_time_ms: float
    cuda_time_ms: float
    self_cpu_time_ms: float
    self_cuda_time_ms: float
    cpu_memory_mb: float
    cuda_memory_mb: float


@dataclass
class ProfileReport:
    """Stages by name, and the top three bottlenecks as (name, time_ms, memory_mb)."""

    stages: Dict[str, StageProfile] = field(default_factory=dict)
    top_bottlenecks: List[Tuple[str, float, float]] = field(default_factory=list)
    total_time_ms: float = 0.0
    total_memory_peak_mb: float = 0.0
    device: str = "cpu"


class PipelineProfiler:
    """``with PipelineProfiler() as p:`` records the pipeline; ``p.stage(name)`` marks a stage.

    ``activities``, ``profile_memory`` and ``record_shapes`` are accepted for
    the notes' sake: stageprof records stage time and memory without torch.profiler.
    """

    def __init__(
        self,
        activities: Sequence[str] = ("cpu", "cuda"),
        profile_memory: bool = True,
        record_shapes: bool = True,
        output_dir: Optional[PathLike] = None,
    ) -> None:
        settings: Dict[str, Any] = {"formats": ["native", "summary"]}
        if output_dir is not None:
            settings["out_dir"] = os.fspath(output_dir)
        self._recording = _Recording(**settings)

    def __enter__(self) -> "PipelineProfiler":
        self._recording.ensure_started()
        return self

    def __exit__(self, *exc: object) -> None:
        self._recording.report()

    def stage(self, name: str) -> ContextManager[None]:
        """A stage of the pipeline."""
        return _stage(name)

    def export_chrome_trace(self, path: PathLike) -> None:
        """Writes the Chrome trace of the run."""
        self._recording.report().write_chrome(path)

    def get_report(self) -> ProfileReport:
        """The report, with the top three stages by their own time."""
        return _profile_report(self._recording.report())


def _stage_key(s: Dict[str, Any]) -> str:
    return "/".join(s["path"]) if s["depth"] else str(s["name"])


def _profile_report(report: Report) -> ProfileReport:
    summary = report.summary
    stages = {}
    for s in report.stages:
        stages[_stage_key(s)] = StageProfile(
            name=str(s["name"]),
            cpu_time_ms=_ms(s["wall_ns"]),
            cuda_time_ms=_ms(s.get("gpu_busy_ns")),
            self_cpu_time_ms=_ms(s["self_ns"]),
            self_cuda_time_ms=_ms(s.get("gpu_self_busy_ns")),
            cpu_memory_mb=(s.get("mem_peak_bytes") or 0) / MIB,
            cuda_memory_mb=(s.get("gpu_mem_peak_bytes") or 0) / MIB,
        )
    top = []
    for b in summary["bottlenecks"]:
        peak = b.get("gpu_mem_peak_bytes") or b.get("host_mem_peak_bytes") or 0
        top.append(("/".join(b["path"]), _ms(b["self_ns"]), peak / MIB))
    peaks = [m["bytes"] for m in summary["memory_peaks"]]
    peak_bytes = max(peaks) if peaks else summary.get("peak_rss_bytes") or 0
    return ProfileReport(
        stages=stages,
        top_bottlenecks=top,
        total_time_ms=_ms(summary["total_ns"]),
        total_memory_peak_mb=peak_bytes / MIB,
        device="cuda" if summary["devices"] else "cpu",
    )


def format_report(report: ProfileReport) -> str:
    """The report as an ASCII table, the top three bottlenecks marked."""
    ranked = {name: i for i, (name, _, _) in enumerate(report.top_bottlenecks, start=1)}
    rows = [("stage", "CPU ms", "CUDA ms", "CPU MB", "CUDA MB")]
    for key, s in report.stages.items():
        mark = f"#{ranked[key]} " if key in ranked else ""
        rows.append(
            (
                mark + key,
                f"{s.cpu_time_ms:.2f}",
                f"{s.cuda_time_ms:.2f}",
                f"{s.cpu_memory_mb:.1f}",
                f"{s.cuda_memory_mb:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(f"total {report.total_time_ms:.2f} ms on {report.device}; memory peak {report.total_memory_peak_mb:.1f} MB")
    for i, (name, ms, mb) in enumerate(report.top_bottlenecks, start=1):
        lines.append(f"bottleneck #{i}: {name}: {ms:.2f} ms, {mb:.1f} MB")
    return "\n".join(lines)


def _wraps(fn: F, call: Callable[..., Any]) -> F:
    import functools

    return functools.wraps(fn)(call)  # type: ignore[return-value]
