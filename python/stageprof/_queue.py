"""``stageprof.Queue``: a ``queue.Queue`` that says how the stages it joins
wait on each other.

It has ``queue.Queue``'s methods and exceptions (blocking, timeouts,
``task_done``, ``join``), around a ``queue.Queue`` that holds each item
beside the tick its put began at; each item put and got is also recorded
into the running session: how long the put waited for room and the get for
an item, how many items the queue held after, and how long the item was in
it (from the start of its put, as for Rust's ``stageprof::queue``). The
report's ``queues`` turn that into depth over time, time full and empty,
residence and who waited. A queue says it exists (name and capacity) in
each session that sees it used, so one made before ``stageprof.init()``
keeps its capacity in the report.
"""

from __future__ import annotations

import queue
from typing import Generic, Optional, Tuple, TypeVar

from . import _native

T = TypeVar("T")


class Queue(Generic[T]):
    """A FIFO queue named ``name`` in the report, holding at most ``maxsize``
    items (0: no limit), with ``queue.Queue``'s methods and exceptions
    (``queue.Full``, ``queue.Empty``)."""

    def __init__(self, name: str, maxsize: int = 0) -> None:
        self.name = name
        self.maxsize = maxsize
        # Each item travels with its stamp: the tick its put began at and the tick
        # it entered the pipeline (None: nothing recorded then; see stageprof::queue).
        self._queue: queue.Queue[Tuple[T, Optional[Tuple[int, int]]]] = queue.Queue(maxsize)
        self._recorder = _native.QueueRecorder(name, maxsize)

    # The depth after an operation is read from the deque without its lock
    # (qsize() would take it again): another thread may change it at once
    # either way, and len() of a deque is atomic.
    def put(self, item: T, block: bool = True, timeout: Optional[float] = None) -> None:
        stamp = self._recorder.stamp()
        self._queue.put((item, stamp), block, timeout)
        if stamp is not None:
            self._recorder.put(stamp, len(self._queue.queue))

    def get(self, block: bool = True, timeout: Optional[float] = None) -> T:
        began = self._recorder.began()
        item, stamp = self._queue.get(block, timeout)
        if began:
            self._recorder.got(began, stamp, len(self._queue.queue))
        return item

    def put_nowait(self, item: T) -> None:
        self.put(item, block=False)

    def get_nowait(self) -> T:
        return self.get(block=False)

    def task_done(self) -> None:
        self._queue.task_done()

    def join(self) -> None:
        self._queue.join()

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def full(self) -> bool:
        return self._queue.full()

    def __repr__(self) -> str:
        return f"<stageprof.Queue {self.name!r}, {self.qsize()} items>"
