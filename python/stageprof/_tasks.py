"""Stages inside asyncio tasks: they nest per task, not per thread.

Tasks on one event loop interleave on one thread: a stage that spans an
``await`` would otherwise end while another task's stage is open. So while
a loop runs, a stage entered in a task is kept in that task's context (a
context variable: a task started inside a stage inherits it, and its
stages nest under it) and written whole when it ends (a task record: start,
end, the time its task ran in between, and the stages around it), never as
a begin and an end.
The time a task runs is the sum of its steps, each timed as the event loop
runs it (``Handle._run``); a stage's idle time is the rest of its wall time,
spent awaiting.
"""

from __future__ import annotations

import contextvars
import itertools
import weakref
from asyncio import events, tasks
from types import TracebackType
from typing import Any, Callable, List, Optional, Type

from . import _native

# How many event loops are running now (in any thread).
running_loops = 0
_ids = itertools.count(1)
# Per task: ticks its finished steps ran, when its running step started, its open stages.
_ran: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
_step_start: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
# The task stages open in this context, innermost last.
_open: "contextvars.ContextVar[tuple[TaskStage, ...]]" = contextvars.ContextVar("stageprof_task_stages", default=())
_installed = False
_on_change: Optional[Callable[[], None]] = None


def install(on_change: Callable[[], None]) -> None:
    """Watches event loops start and stop, and times task steps; ``on_change``
    is told when loops start or stop running."""
    global _installed, _on_change
    _on_change = on_change
    if _installed:
        return
    _installed = True
    set_running_loop = events._set_running_loop
    run_handle = events.Handle._run

    def watched_set_running_loop(loop: Any) -> None:
        global running_loops
        previous = events._get_running_loop()
        set_running_loop(loop)
        running_loops += (loop is not None) - (previous is not None)
        if _on_change is not None:
            _on_change()

    def timed_run(handle: Any) -> None:
        task = getattr(handle._callback, "__self__", None)
        if not isinstance(task, tasks.Task):
            return run_handle(handle)
        start = _native.ticks()
        _step_start[task] = start
        try:
            return run_handle(handle)
        finally:
            _ran[task] = _ran.get(task, 0) + _native.ticks() - start
            _step_start.pop(task, None)

    events._set_running_loop = watched_set_running_loop
    events.Handle._run = timed_run  # type: ignore[assignment]


def current_task() -> Any:
    """The asyncio task running on this thread, if any."""
    loop = events._get_running_loop()
    return None if loop is None else tasks.current_task(loop)


def _ran_by(task: Any, now: int) -> int:
    start = _step_start.get(task)
    return _ran.get(task, 0) + (now - start if start is not None else 0)


class TaskStage:
    """One call of a stage inside an asyncio task."""

    __slots__ = ("stage", "task", "id", "start", "ran_before", "parent", "ancestors", "token")
    ancestors: List[int]

    def __init__(self, stage: _native.Stage, task: Any) -> None:
        self.stage = stage
        self.task = task
        self.id = next(_ids)

    def __enter__(self) -> None:
        now = _native.ticks()
        self.start = now
        self.ran_before = _ran_by(self.task, now)
        around = _open.get()
        if around:
            outer = around[-1]
            self.parent = outer.id
            self.ancestors = [*outer.ancestors, outer.stage.name_id]
        else:
            self.parent = 0
            self.ancestors = _native.open_stage_ids()
        self.token = _open.set((*around, self))

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        now = _native.ticks()
        _open.reset(self.token)
        busy = _ran_by(self.task, now) - self.ran_before
        _native.record_task(self.stage.name_id, self.start, now, busy, self.id, self.parent, self.ancestors)
