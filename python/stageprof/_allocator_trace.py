"""GPU memory per stage from torch's caching allocator, by its own trace.

The allocator's trace (``torch.cuda.memory._record_memory_history`` without
stack capture) notes every allocation, free and segment change with its
time, at no cost worth measuring; reading it is what costs (about 1 µs an
event, with the GIL held, in ``torch.cuda.memory._snapshot``). So the trace
is on for whole frames, as many as keep the reading under ``COST_SHARE`` of
the run's time (always the first), and read as each traced frame ends; the
session turns each read into the allocator's levels over the frame
(crates/stageprof-python/src/allocator_trace.rs), and the report gives each
stage call inside a traced frame its peak and net of allocated bytes and
the reserved bytes. A program without frames is traced in windows of
``READ_EVERY_S`` seconds, under the same share, while it records.

The trace's times are whole microseconds by a clock of its own, so while
it is on, each stage edge also tags the thread's trace events with itself
(torch's per-thread metadata; crates/stageprof-python/src/edge_tags.rs),
and an event in the microsecond of an edge is counted on its right side.

Each read, and each frame end or window while the trace is off, is followed
by a mark (``allocator_trace_mark``): every level up to then is written. A
bounded profile, summed up while it records, holds each call back until a
mark passes its end.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, Callable, Optional, Type

from . import _native

# The most of the run's time that reading the trace may take.
COST_SHARE = 0.01
# Windows of a program that has no frames, in seconds.
READ_EVERY_S = 0.5
# The trace's ring buffer: events past this many in one window are lost
# (and said); about 100 bytes each.
MAX_ENTRIES = 1 << 20
# The history switch's newer options, as many as this torch takes: the frees
# completed are not needed (a free counts when requested); and torch's
# callback for annotations, which it adds as history goes on and removes as
# it goes off, is made global. A thread-local one (the default) belongs to
# the thread that turned history on, so a switch off on another thread (a
# window's, or a frame ending elsewhere) cannot find it: torch prints
# "Requested callback is not found" on the program's stderr and the callback
# stays on that thread (seen on the H100 hosts: two lines a frameless session).
_HISTORY_OPTIONS: tuple[dict[str, Any], ...] = (
    {"skip_actions": ["free_completed"], "global_record_annotations": True},
    {"global_record_annotations": True},
    {},
)


class AllocatorTraceReader:
    """Turns torch's allocator trace on and off, and hands what it saw to ``session``."""

    def __init__(self, session: _native.Session, memory: Any) -> None:
        self._session = session
        self._memory = memory
        self._lock = threading.Lock()
        self._since = time.perf_counter()
        # Seconds spent reading and switching the trace.
        self._cost = 0.0
        # Wall-clock ns since when the trace holds events; None while off.
        self._on_at: Optional[int] = None
        # Whether the trace was on before _on_at (the last read left it on).
        self._went_on = False
        self._frames = 0
        self._running = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._options = 0  # the first of _HISTORY_OPTIONS this torch takes
        self._tag_edges: Optional[Callable[[str], None]] = None

    @property
    def cost_s(self) -> float:
        """Seconds spent so far reading and switching the trace (what ``COST_SHARE`` bounds)."""
        return self._cost

    def start(self) -> bool:
        """Turns the trace on; whether it runs (one line on stderr says why not)."""
        try:
            memory = self._memory
            if memory.get_allocator_backend() != "native":
                return _off(f"torch's allocator is {memory.get_allocator_backend()!r}, whose trace stageprof does not read")
            if _history_enabled(memory):
                return _off("the program records the allocator's history itself (torch.cuda.memory._record_memory_history)")
            self._tag_edges = _edge_tag_setter(memory)
            self._running = True
            self._session.allocator_trace_begins()
            self._switch(self._turn_on)
        except Exception as e:  # never into the program; the CPU figures go on
            self._running = False
            self._mark(trace_off=True, done=True)
            return _off(f"torch's allocator trace could not be turned on ({e!r})")
        self._thread = threading.Thread(target=self._windows_without_frames, name="stageprof-allocator", daemon=True)
        self._thread.start()
        return True

    def frame_begin(self) -> None:
        if not _native.is_recording():
            return  # the frame's stages are not recorded: reading the trace would buy nothing
        with self._lock:
            first = self._frames == 0
            self._frames += 1
            if first and self._on_at is not None:
                self._switch(self._read_and_off)  # the time before the first frame
            if first or self._cost <= COST_SHARE * (time.perf_counter() - self._since):
                self._switch(self._turn_on)

    def frame_end(self) -> None:
        with self._lock:
            if self._on_at is not None:
                self._switch(self._read_and_off)
            else:
                self._mark(trace_off=True)

    def stop(self) -> None:
        """Reads what is left and turns the trace off."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._on_at is not None:
                self._switch(self._read_and_off)
            if self._running:
                self._mark(trace_off=True, done=True)
            self._running = False
        unexplained = self._session.gpu_memory_unexplained_bytes
        if unexplained:
            print(
                f"stageprof: GPU memory: {unexplained} bytes of allocator changes are not explained by its trace"
                " (events between two reads, or PYTORCH_CUDA_ALLOC_CONF settings such as expandable_segments that"
                " change how blocks are sized); the levels after them are right, peaks and nets around them may"
                " be off by that much",
                file=sys.stderr,
            )

    def _windows_without_frames(self) -> None:
        while not self._stop.wait(READ_EVERY_S):
            with self._lock:
                if self._frames or not self._running:
                    return
                # Not recording: no stage would get the levels, so the trace is not worth its reading.
                within = _native.is_recording() and self._cost <= COST_SHARE * (time.perf_counter() - self._since)
                if self._on_at is not None:
                    self._switch(self._read_and_go_on if within else self._read_and_off)
                elif within:
                    self._switch(self._turn_on)
                else:
                    self._mark(trace_off=True)

    def _switch(self, change: Callable[[], None]) -> None:
        """Runs ``change`` with its cost counted; a failure turns GPU memory off for the run."""
        if not self._running:
            return
        began = time.perf_counter()
        try:
            change()
        except Exception as e:  # never into the program; the CPU figures go on
            self._running = False
            self._on_at = None
            self._session.tag_stage_edges(None)
            try:
                self._record(enabled=None)
            except Exception:
                pass
            _off(f"reading torch's allocator trace failed ({e!r})")
            self._mark(trace_off=True, done=True)
        self._cost += time.perf_counter() - began

    def _mark(self, trace_off: bool, done: bool = False, unix_ns: Optional[int] = None) -> None:
        """Says that every level up to ``unix_ns`` (now) has been handed over."""
        try:
            self._session.allocator_trace_mark(time.time_ns() if unix_ns is None else unix_ns, trace_off, done)
        except Exception:  # never into the program
            pass

    def _turn_on(self) -> None:
        # The blocks as the trace starts: it records sizes asked for, the levels count blocks.
        self._session.take_allocator_layout(self._memory._snapshot())
        self._on_at = time.time_ns()
        # Off until now: the calls that ended by then have all their levels.
        self._mark(trace_off=True, unix_ns=self._on_at - 1)
        self._went_on = False
        self._session.tag_stage_edges(self._tag_edges)
        self._record(enabled="all", clear_history=True)

    def _read_and_off(self) -> None:
        self._read(keep_on=False)
        self._session.tag_stage_edges(None)
        # Emptied too: torch keeps the entries of a trace turned off, and the next turn-on's snapshot would copy them.
        self._record(enabled=None, clear_history=True)

    def _read_and_go_on(self) -> None:
        self._read(keep_on=True)

    def _read(self, keep_on: bool) -> None:
        assert self._on_at is not None
        start, end, went_on = self._on_at, time.time_ns(), self._went_on
        snapshot = self._memory._snapshot()
        if keep_on:
            # Emptied right after the read; events in between are caught by the levels (see the Rust side).
            self._record(enabled="all", clear_history=True)
        self._on_at, self._went_on = (end, True) if keep_on else (None, False)
        self._session.read_allocator_trace(snapshot, start, end, went_on)
        self._mark(trace_off=not keep_on, unix_ns=end)

    def _record(self, enabled: Optional[str], clear_history: bool = False) -> None:
        history = self._memory._record_memory_history
        args: dict[str, Any] = dict(context=None, stacks="python", max_entries=MAX_ENTRIES, clear_history=clear_history)
        while True:
            try:
                history(enabled=enabled, **args, **_HISTORY_OPTIONS[self._options])
                return
            except TypeError:  # an older torch: the next options, down to none
                if self._options + 1 == len(_HISTORY_OPTIONS):
                    raise
                self._options += 1


class TracedFrame:
    """A frame whose GPU memory the allocator's trace may cover."""

    __slots__ = ("frame", "reader")

    def __init__(self, frame: Any, reader: AllocatorTraceReader) -> None:
        self.frame = frame
        self.reader = reader

    def __enter__(self) -> None:
        self.reader.frame_begin()
        self.frame.__enter__()

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        try:
            self.frame.__exit__(exc_type, exc, tb)
        finally:
            self.reader.frame_end()


def _history_enabled(memory: Any) -> bool:
    """Whether the allocator's history is on, by the torch that ``memory`` belongs to."""
    torch = getattr(memory, "torch", None)
    enabled = getattr(getattr(torch, "_C", None), "_cuda_isHistoryEnabled", None)
    return bool(enabled()) if enabled is not None else False


def _edge_tag_setter(memory: Any) -> Optional[Callable[[str], None]]:
    """Torch's setter of the trace's metadata, where this torch has one and
    it is per thread (as in torch 2.11): a tag set on one thread must not
    show on another. Asked once, on a thread made for it."""
    torch = getattr(memory, "torch", None)
    setter: Optional[Callable[[str], None]] = getattr(getattr(torch, "_C", None), "_cuda_setMemoryMetadata", None)
    setter = setter or getattr(memory, "_set_memory_metadata", None)
    getter = getattr(memory, "_get_memory_metadata", None)
    if setter is None or getter is None:
        return None
    try:
        here = getter()
        probe = threading.Thread(target=setter, args=("stageprof:per-thread?",), name="stageprof-probe")
        probe.start()
        probe.join()
        if getter() == here:
            return setter
        setter(here)
    except Exception:
        pass
    return None


def _off(why: str) -> bool:
    print(f"stageprof: GPU memory per stage is off: {why}", file=sys.stderr)
    return False
