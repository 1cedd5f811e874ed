"""The global session: started by ``init()``, finished by ``Session.finish()``,
and otherwise when the interpreter exits, when an exception ends the
program, or on SIGTERM, so that every run leaves valid outputs.

SIGINT stays Python's (KeyboardInterrupt): the stages it unwinds are marked
unwound, and the outputs are written at exit with the end reason ``SIGINT``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import warnings
from types import FrameType, TracebackType
from typing import Any, Dict, Optional, Type

from . import _native, _tasks, _torch
from ._report import Report


class Session:
    """The running global profiler (``stageprof.init``)."""

    def __init__(self, native: _native.Session, settings: Dict[str, Any]) -> None:
        self._native = native
        self._settings = settings
        self._report: Optional[Report] = None
        self._lock = threading.Lock()

    @property
    def output_dir(self) -> str:
        """Where the outputs are written."""
        return self._native.output_dir

    @property
    def enabled(self) -> bool:
        """Whether the session records (``enabled`` and ``STAGEPROF`` allowed it)."""
        return self._native.enabled

    @property
    def finished(self) -> bool:
        """Whether ``finish`` was called."""
        return self._report is not None

    def finish(self, reason: str = "finish") -> Report:
        """Stops recording, writes the outputs and returns the report (the same
        one if called again). ``reason`` is the report's ``end_reason``."""
        global _current
        with self._lock:
            if self._report is None:
                _torch.detach(self._native)
                native = self._native.finish(reason)
                assert native is not None, "a session is finished once, under its lock"
                self._report = Report(native)
                if _current is self:
                    _current = None
                    _checks_changed()
            return self._report

    def __enter__(self) -> "Session":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.finish("finish" if exc_type is None else _reason_of(exc_type))

    def __repr__(self) -> str:
        state = "finished" if self.finished else "recording" if self.enabled else "off"
        return f"<stageprof.Session {state}, outputs in {self.output_dir!r}>"


_current: Optional[Session] = None
_hooks_installed = False


def current() -> Optional[Session]:
    """The running session, if any."""
    return _current


def init(**settings: Any) -> Session:
    """Starts the global profiler. ``settings`` are stageprof.toml's keys
    (``out_dir`` for ``output_dir``, ``formats``, ``sample_every``,
    ``cpu_time``, ``enabled``, ...) and override the file and the
    ``STAGEPROF*`` environment variables. A session already running is
    returned as it is, with a warning."""
    global _current
    if _current is not None:
        warnings.warn("stageprof.init(): a session is already running; returning it", RuntimeWarning, stacklevel=2)
        return _current
    settings = _per_rank(settings)
    session = Session(_native.start(settings), settings)
    _current = session
    _install_hooks()
    _checks_changed()
    _torch.attach(session._native, _checks_changed)
    return session


def _checks_changed() -> None:
    from . import _update_check

    _update_check()


def _per_rank(settings: Dict[str, Any]) -> Dict[str, Any]:
    """In a torch.distributed job (initialized before ``init``): the rank goes
    into the profile, and each rank writes to ``<out_dir>/rank-<rank>``, so
    ``stageprof report <out_dir>`` shows the ranks side by side."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return settings
    rank = dist.get_rank()
    _native.set_rank(rank)
    out = settings.get("out_dir", settings.get("output_dir"))
    base = os.fspath(out) if out is not None else os.environ.get("STAGEPROF_OUT", "stageprof-out")
    return {**{k: v for k, v in settings.items() if k != "output_dir"}, "out_dir": os.path.join(base, f"rank-{rank}")}


def _reason_of(exc_type: Type[BaseException]) -> str:
    return "SIGINT" if issubclass(exc_type, KeyboardInterrupt) else "exception"


# Why the program is ending, once an uncaught exception says so.
_ending_because: Optional[str] = None


def _finish_current(reason: str) -> None:
    session = _current
    if session is not None and not session.finished:
        session.finish(_ending_because or reason)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    _tasks.install(_checks_changed)
    atexit.register(_finish_current, "exit")
    previous_hook = sys.excepthook

    def excepthook(exc_type: Type[BaseException], exc: BaseException, tb: Optional[TracebackType]) -> None:
        global _ending_because
        _ending_because = _reason_of(exc_type)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_native.before_fork, after_in_parent=_native.after_fork, after_in_child=_after_fork_in_child
        )
        import multiprocessing.util

        multiprocessing.util.register_after_fork(_fork_token, _finish_in_multiprocessing_child)


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    _finish_current("SIGTERM")
    # Then end as SIGTERM would have: the parent sees the signal.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing, data-loader workers) never writes into
    its parent's files: the parent's session is let go (its threads stayed in
    the parent), and the child records into a session of its own, in
    ``<out_dir>/child-<pid>``, written when the child exits.
    ``stageprof.read([parent, child])`` shows them side by side."""
    global _current
    _native.after_fork()
    parent = _current
    if parent is None:
        return
    _native.abandon_after_fork()
    _leftover.append(parent)
    _current = None
    _checks_changed()
    settings = dict(parent._settings)
    settings["out_dir"] = os.path.join(parent.output_dir, f"child-{os.getpid()}")
    settings["formats"] = ["native", "summary"]
    _current = Session(_native.start(settings), settings)
    _checks_changed()
    _torch.attach(_current._native, _checks_changed)


class _ForkToken:
    """What multiprocessing's after-fork registry holds on to (it keeps weak references)."""


_fork_token = _ForkToken()


def _finish_in_multiprocessing_child(_: _ForkToken) -> None:
    # multiprocessing's children end with os._exit after its own finalizers,
    # not atexit's; this runs in the child once multiprocessing has reset them.
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _finish_current, args=("exit",), exitpriority=0)


# Sessions inherited through fork: never finished (their collector thread is
# the parent's), kept so that they are not finished when collected either.
_leftover: list[Session] = []
