"""stageprof: where a pipeline's time and memory go, stage by stage.

Stages from Python are recorded by stageprof's Rust recorder, into the same
native file as a Rust pipeline's, and reported by the same code::

    import stageprof

    session = stageprof.init(out_dir="stageprof-out")
    for batch in loader:
        with stageprof.frame():
            with stageprof.stage("load"):
                x = load(batch)
            train_step(x)            # @stageprof.profile on its definition
    report = session.finish()        # also written at exit, on an exception, on SIGTERM
    print(report)                    # the terminal table; report.summary is summary.json

``stageprof.read(path)`` reports a profile after the fact: a native file,
a PyTorch profiler trace or a Chrome trace, plain or gzipped.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from typing import Any, Callable, ContextManager, Dict, Sequence, TypeVar, Union, overload

from . import _native
from . import _session as _session_module
from . import _tasks, _torch
from ._queue import Queue
from ._report import Report
from ._session import Session, current, init

__all__ = [
    "Queue",
    "Report",
    "Session",
    "SweepPoint",
    "SweepResult",
    "counter",
    "current",
    "frame",
    "init",
    "is_recording",
    "profile",
    "read",
    "stage",
    "set_enabled",
    "sweep",
]

F = TypeVar("F", bound=Callable[..., Any])
PathLike = Union[str, "os.PathLike[str]"]


class _Stages(Dict[str, _native.Stage]):
    """One Stage object per name, made on first use: entering a stage costs no allocation."""

    def __missing__(self, name: str) -> _native.Stage:
        if not isinstance(name, str):
            raise TypeError(f"a stage name must be a str, not {type(name).__name__}")
        made = self[name] = _native.Stage(name)
        return made


_stages = _Stages()
_FRAME = _native.Frame()
# What frame() hands out: the native frame, or one the allocator's trace may cover. Kept by _update_check.
_frame_now: ContextManager[None] = _FRAME
_warned_inactive = False
# Whether stage() must look further than its name: no session runs, an
# event loop does (its tasks' stages nest per task), or torch.profiler does
# (stages are mirrored into its trace). Kept by _update_check.
_check = True


def _update_check() -> None:
    global _check, _frame_now
    _check = _session_module._current is None or _tasks.running_loops > 0 or _torch.profiler_running
    _frame_now = _torch.traced_frame(_FRAME) or _FRAME


def _warn_inactive() -> None:
    global _warned_inactive
    if not _warned_inactive:
        _warned_inactive = True
        warnings.warn(
            "stageprof: no session is running (call stageprof.init() first); stages are not recorded",
            RuntimeWarning,
            stacklevel=3,
        )


def stage(name: str) -> ContextManager[None]:
    """A stage: ``with stageprof.stage("name"):`` records one call of it.

    Stages nest per thread. Outside a session it records nothing (and warns once).
    """
    try:
        named = _stages[name]
    except TypeError:
        raise TypeError(f"a stage name must be a str, not {type(name).__name__}") from None
    if _check:
        if _session_module._current is None:
            _warn_inactive()
        else:
            task = _tasks.current_task() if _tasks.running_loops else None
            if task is not None:
                return _tasks.TaskStage(named, task)
            if _torch.profiler_running:
                return _torch.Mirrored(named)
    return named


def frame() -> ContextManager[None]:
    """One iteration of the pipeline: ``with stageprof.frame():`` around each."""
    return _frame_now


def counter(name: str, value: float) -> None:
    """Records a sample of a counter or gauge."""
    if not isinstance(name, str):
        raise TypeError(f"a counter name must be a str, not {type(name).__name__}")
    _native.counter(name, float(value))


def is_recording() -> bool:
    """Whether the global session records now."""
    return _native.is_recording()


def set_enabled(on: bool) -> None:
    """Turns the global session's recording on or off at run time (a stage
    or frame begun while it is off is not recorded; one costs about as much
    as an empty ``with``)."""
    _native.set_enabled(bool(on))


@overload
def profile(target: F) -> F: ...


@overload
def profile(target: str | None = None) -> Callable[[F], F]: ...


def profile(target: Any = None) -> Any:
    """A decorator: every call of the function is a stage.

    ``@stageprof.profile`` names it ``module.qualname``; ``@stageprof.profile("name")``
    as given. Functions, methods, generators (each resumption is a call) and
    coroutines (the whole ``await``) are supported.
    """
    if callable(target):
        return _wrap(target, _qualified_name(target))
    if target is None or isinstance(target, str):
        name = target
        return lambda fn: _wrap(fn, name or _qualified_name(fn))
    raise TypeError(f"@stageprof.profile takes a function or a stage name, not {type(target).__name__}")


def _qualified_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{qualname}" if module else qualname


def _wrap(fn: F, name: str) -> F:
    the_stage = _stages[name]
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            with stage(name):
                return await fn(*args, **kwargs)

        return coroutine  # type: ignore[return-value]
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            return (yield from _timed_resumptions(fn(*args, **kwargs), the_stage))

        return generator  # type: ignore[return-value]
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_generator(*args: Any, **kwargs: Any) -> Any:
            agen = fn(*args, **kwargs)
            while True:
                with stage(name):
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        return
                yield item

        return async_generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        # In a task, through stage(): it nests under the task's open stages.
        with stage(name) if _check else the_stage:
            return fn(*args, **kwargs)

    return function  # type: ignore[return-value]


def _timed_resumptions(gen: Any, the_stage: ContextManager[None]) -> Any:
    """Runs ``gen`` for its caller, each resumption (``next``, ``send``,
    ``throw``) inside ``the_stage``; what the caller sends or throws reaches ``gen``."""
    resume: Callable[[], Any] = functools.partial(gen.send, None)
    while True:
        try:
            with the_stage:
                value = resume()
        except StopIteration as stop:
            return stop.value
        try:
            sent = yield value
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as thrown:  # noqa: B036 (thrown into the generator, as `yield from` does)
            resume = functools.partial(gen.throw, thrown)
        else:
            resume = functools.partial(gen.send, sent)


def read(paths: PathLike | Sequence[PathLike], top: int = 3) -> Report:
    """Reports profiles after the fact, exactly as ``stageprof report`` does:
    native stageprof files, PyTorch profiler traces and Chrome traces, plain
    or gzipped. Several paths are the ranks of one job; a directory stands
    for its profiles (a run's output directory: its native profile; a
    bounded run's kept parts: one profile), and a JSON file in it that
    holds no trace (a config, notes) is skipped with a ``UserWarning``."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return Report(_native.read(list(paths), top))


from ._sweep import SweepPoint, SweepResult, sweep  # noqa: E402  (it uses the names above)
