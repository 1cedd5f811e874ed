"""Shared helpers: each test that records runs its session in a fresh
interpreter (the session is global, as in a real program), or in this one
with a session finished at the end of the test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

import stageprof

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "stageprof-readers" / "tests" / "fixtures"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[stageprof.Session]:
    """A running global session writing native and summary files under tmp_path, finished after the test."""
    s = stageprof.init(out_dir=tmp_path / "out", formats=["native", "summary"])
    try:
        yield s
    finally:
        s.finish()


@contextlib.contextmanager
def fake_torch_cuda(**attrs: Any) -> Iterator[types.ModuleType]:
    """A ``torch.cuda`` that says CUDA is initialized on device 0 (on a
    machine with no driver), with ``attrs`` added, in place of the real one
    while the block runs."""
    from stageprof import _torch

    fake = types.ModuleType("torch.cuda")
    fake.is_initialized = lambda: True  # type: ignore[attr-defined]
    fake.current_device = lambda: 0  # type: ignore[attr-defined]
    fake._lazy_init = lambda: None  # type: ignore[attr-defined]
    fake.set_stream = lambda stream: None  # type: ignore[attr-defined]
    for name, value in attrs.items():
        setattr(fake, name, value)
    saved = sys.modules.get("torch.cuda")
    sys.modules["torch.cuda"] = fake
    _torch._patched = False
    try:
        yield fake
    finally:
        if saved is None:
            del sys.modules["torch.cuda"]
        else:
            sys.modules["torch.cuda"] = saved
        _torch._patched = False


def run_python(code: str, cwd: Path, timeout: float = 60, **popen: object) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a new interpreter with this one's packages."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stage_of(report: stageprof.Report, path: str) -> dict[str, object]:
    """The stage at ``path`` (names joined by ``/``) of a report."""
    for s in report.stages:
        if "/".join(s["path"]) == path:
            return s
    raise AssertionError(f"no stage {path!r} in {[ '/'.join(s['path']) for s in report.stages ]}")


class FakeAllocator:
    """Torch's caching allocator as stageprof sees it: a trace of timed
    events, emptied when history is recorded again with ``clear_history``,
    and segments that say the levels now."""

    def __init__(
        self,
        backend: str = "native",
        skew_us: int = 0,
        metadata: str = "per thread",
        takes: frozenset[str] = frozenset({"skip_actions", "global_record_annotations"}),
    ) -> None:
        self.backend = backend
        # The history switch's newer keywords this torch takes (others raise TypeError, as Python does).
        self.takes = takes
        # Torch's RecordFunction callback for annotations, added as history goes on and
        # removed as it goes off: thread-local to the thread that turned it on unless
        # global. `callbacks_not_found` counts removals from another thread (torch prints
        # "Requested callback is not found" and the callback stays on its thread).
        self.callback_owner: Optional[object] = None
        self.callbacks_not_found = 0
        # How far the allocator's clock is off the wall clock (torch's converts a clock of its own).
        self.skew_us = skew_us
        # Torch's trace metadata: "per thread" (torch 2.11), "global" or "none".
        self.metadata = metadata
        self._thread_metadata = threading.local()
        self._global_metadata = ""
        self._lock = threading.Lock()
        # Every metadata set, in order.
        self.tags: list[str] = []
        self.trace: list[dict[str, Any]] = []
        self.allocated = 0
        self.reserved = 0
        self.recording = False
        self.snapshots = 0
        # Allocated bytes after each event recorded, as the test expects to see them drawn.
        self.drawn: list[int] = []
        self.next_address = 0
        self.peak = 0
        self.live: dict[int, list[int]] = {}
        self.freed: dict[int, int] = {}

    def event(self, action: str, size: int) -> None:
        """An event of ``size`` bytes (a multiple of 512, so that the block is
        the size asked for); a free is of the latest live block of that size."""
        with self._lock:
            self._event(action, size)

    def _event(self, action: str, size: int) -> None:
        self.allocated += {"alloc": size, "free_requested": -size}.get(action, 0)
        self.peak = max(self.peak, self.allocated)
        self.reserved += {"segment_alloc": size, "segment_free": -size}.get(action, 0)
        if action == "alloc":
            self.next_address += 1 << 30
            address = self.next_address
            self.live.setdefault(size, []).append(address)
        elif action == "free_requested":
            address = self.freed[size] = self.live[size].pop()
        elif action == "free_completed":
            address = self.freed[size]
        else:  # segments, away from the blocks
            address = (1 << 50) + self.reserved
        if self.recording:
            if action in ("alloc", "free_requested"):
                self.drawn.append(self.allocated)
            time_us = time.time_ns() // 1000 + self.skew_us
            entry = {"action": action, "addr": address, "size": size, "stream": 0, "time_us": time_us}
            if self.metadata != "none":
                entry["user_metadata"] = self._get_memory_metadata()
            self.trace.append(entry)

    # The torch.cuda.memory functions stageprof calls.
    def get_allocator_backend(self) -> str:
        return self.backend

    def _record_memory_history(self, enabled: Optional[str] = "all", clear_history: bool = False, **how: Any) -> None:
        unknown = set(how) - {"context", "stacks", "max_entries"} - self.takes
        if unknown:
            raise TypeError(f"_record_memory_history() got an unexpected keyword argument {unknown.pop()!r}")
        here = "global" if how.get("global_record_annotations") else threading.get_ident()
        if enabled is not None and self.callback_owner is None:
            self.callback_owner = here
        elif enabled is None and self.callback_owner is not None:
            if self.callback_owner not in ("global", here):
                self.callbacks_not_found += 1
            self.callback_owner = None
        self.recording = enabled is not None
        if clear_history or not self.recording:
            self.trace = []

    def _snapshot(self) -> dict[str, Any]:
        self.snapshots += 1
        segment = {"device": 0, "allocated_size": self.allocated, "total_size": self.reserved, "blocks": []}
        return {"segments": [segment], "device_traces": [list(self.trace)]}

    def _set_memory_metadata(self, metadata: str) -> None:
        self.tags.append(metadata)
        if self.metadata == "global":
            self._global_metadata = metadata
        else:
            self._thread_metadata.value = metadata

    def _get_memory_metadata(self) -> str:
        if self.metadata == "global":
            return self._global_metadata
        return str(getattr(self._thread_metadata, "value", ""))

    def module(self) -> types.ModuleType:
        m = types.ModuleType("torch.cuda.memory")
        names = ["get_allocator_backend", "_record_memory_history", "_snapshot"]
        if self.metadata != "none":
            names += ["_set_memory_metadata", "_get_memory_metadata"]
        for name in names:
            setattr(m, name, getattr(self, name))
        return m

    def cuda_attrs(self) -> dict[str, Any]:
        """What a fake torch.cuda needs of this allocator: its memory module and counters."""

        def reset_peak_memory_stats() -> None:
            self.peak = self.allocated

        return {
            "memory": self.module(),
            "synchronize": lambda: None,
            "empty_cache": lambda: None,
            "reset_peak_memory_stats": reset_peak_memory_stats,
            "memory_allocated": lambda: self.allocated,
            "max_memory_allocated": lambda: self.peak,
        }
