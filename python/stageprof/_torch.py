"""GPU figures for PyTorch pipelines, found at run time (torch is optional).

GPU recording starts as soon as torch has initialized CUDA (``gpu="auto"``,
the default: the config's or ``STAGEPROF_GPU``'s mode, ``kernels`` unless
they say otherwise), on torch's current device: from then on every stage
records a CUDA event at its begin and end on the thread's current stream,
and with ``kernels`` CUPTI names the stage of each kernel, copy and memset;
GPU memory per stage comes from the caching allocator's own trace
(``_allocator_trace``).
Torch's default stream is the legacy default stream, the one stageprof
records on unless told otherwise; a switch of stream (``torch.cuda.stream``,
``torch.cuda.set_stream``) is passed on as it happens, so a stage costs no
call into torch.

While torch.profiler runs, every stage is also a ``record_function`` range
in its trace (``Mirrored``), so ``stageprof report`` of that trace shows the
same stages; the stage then costs what ``record_function`` costs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

from . import _native
from ._allocator_trace import AllocatorTraceReader, TracedFrame

# Whether torch.profiler is recording now.
profiler_running = False
_on_change: Optional[Callable[[], None]] = None
_session: Optional[_native.Session] = None
# The session whose GPU recording was started (or tried): once each.
_started: Optional[_native.Session] = None
_memory_reader: Optional[AllocatorTraceReader] = None
_patched = False


def attach(session: _native.Session, on_change: Callable[[], None]) -> None:
    """Starts ``session``'s GPU recording when torch has CUDA up: now, or
    when torch initializes it, or once torch is imported and does; tells
    ``on_change`` when torch.profiler starts or stops."""
    global _session, _on_change
    _on_change = on_change
    _session = session if session.gpu != "off" else None
    cuda = sys.modules.get("torch.cuda")
    if cuda is not None:
        _watch(cuda)
    elif not any(isinstance(f, _TorchCudaFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchCudaFinder())


def _start(cuda: ModuleType) -> None:
    global _started, _memory_reader
    session = _session
    if session is None or session is _started or not cuda.is_initialized():
        return
    # Before anything below calls back into torch.cuda._lazy_init (which calls this).
    _started = session
    if session.start_gpu(session.gpu, cuda.current_device()):
        _native.set_stream(cuda.current_stream().cuda_stream)
    if session.gpu_memory:
        reader = AllocatorTraceReader(session, getattr(cuda, "memory", None))
        _memory_reader = reader if reader.start() else None
        if _on_change is not None:
            _on_change()


def detach(session: _native.Session) -> None:
    """As ``session`` finishes: the GPU memory left in the allocator's trace goes into it."""
    global _memory_reader
    reader = _memory_reader
    if reader is not None and _started is session:
        _memory_reader = None
        reader.stop()
        if _on_change is not None:
            _on_change()


def traced_frame(frame: Any) -> Optional[TracedFrame]:
    """``frame``, for the allocator's trace to cover when it may; None while GPU memory is not traced."""
    return TracedFrame(frame, _memory_reader) if _memory_reader is not None else None


def _watch(cuda: ModuleType) -> None:
    """Starts now if CUDA is up; else when ``torch.cuda._lazy_init`` brings it up.
    Passes stream switches on either way."""
    global _patched
    if not _patched:
        _patched = True
        _watch_profiler()
        lazy_init = cuda._lazy_init
        set_stream = cuda.set_stream

        def watched_lazy_init() -> None:
            lazy_init()
            _start(cuda)

        def watched_set_stream(stream: Any) -> None:
            set_stream(stream)
            if stream is not None:
                _native.set_stream(stream.cuda_stream)

        setattr(cuda, "_lazy_init", watched_lazy_init)
        setattr(cuda, "set_stream", watched_set_stream)
    _start(cuda)


def _watch_profiler() -> None:
    profiler = sys.modules.get("torch.autograd.profiler")
    if profiler is None or not hasattr(profiler, "_set_is_profiler_enabled"):
        return
    set_enabled = profiler._set_is_profiler_enabled

    def watched_set_enabled(enable: bool) -> None:
        global profiler_running
        set_enabled(enable)
        profiler_running = bool(enable)
        if _on_change is not None:
            _on_change()

    setattr(profiler, "_set_is_profiler_enabled", watched_set_enabled)


class Mirrored:
    """A stage that is also a torch.profiler ``record_function`` range."""

    __slots__ = ("stage", "range")

    def __init__(self, stage: _native.Stage) -> None:
        import torch.autograd.profiler

        self.stage = stage
        self.range = torch.autograd.profiler.record_function(stage.name)

    def __enter__(self) -> None:
        self.stage.__enter__()
        self.range.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.range.__exit__(exc_type, exc, tb)
        finally:
            self.stage.__exit__(exc_type, exc, tb)


class _TorchCudaFinder(importlib.abc.MetaPathFinder):
    """Watches for ``torch.cuda`` being imported after ``init``."""

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != "torch.cuda":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_watch(module: ModuleType) -> None:
            exec_module(module)
            _watch(module)

        loader.exec_module = exec_and_watch  # type: ignore[method-assign]
        return spec
