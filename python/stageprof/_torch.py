"""GPU figures for PyTorch pipelines, found at run time (torch is optional).

GPU recording starts as soon as torch has initialized CUDA (``gpu="auto"``,
the default: the config's or ``STAGEPROF_GPU``'s mode, ``kernels`` unless
they say otherwise), on torch's current device: from then on every stage
records a CUDA event at its begin and end on the thread's current stream,
and with ``kernels`` CUPTI names the stage of each kernel, copy and memset.
Torch's default stream is the legacy default stream, the one stageprof
records on unless told otherwise; a switch of stream (``torch.cuda.stream``,
``torch.cuda.set_stream``) is passed on as it happens, so a stage costs no
call into torch.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Optional, Sequence

from . import _native

_session: Optional[_native.Session] = None
# The session whose GPU recording was started (or tried): once each.
_started: Optional[_native.Session] = None
_patched = False


def attach(session: _native.Session) -> None:
    """Starts ``session``'s GPU recording when torch has CUDA up: now, or
    when torch initializes it, or once torch is imported and does."""
    global _session
    if session.gpu == "off":
        return
    _session = session
    cuda = sys.modules.get("torch.cuda")
    if cuda is not None:
        _watch(cuda)
    elif not any(isinstance(f, _TorchCudaFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchCudaFinder())


def _start(cuda: ModuleType) -> None:
    global _started
    session = _session
    if session is None or session is _started or not cuda.is_initialized():
        return
    # Before anything below calls back into torch.cuda._lazy_init (which calls this).
    _started = session
    if session.start_gpu(session.gpu, cuda.current_device()):
        _native.set_stream(cuda.current_stream().cuda_stream)


def _watch(cuda: ModuleType) -> None:
    """Starts now if CUDA is up; else when ``torch.cuda._lazy_init`` brings it up.
    Passes stream switches on either way."""
    global _patched
    if not _patched:
        _patched = True
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
