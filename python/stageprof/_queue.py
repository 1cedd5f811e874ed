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
        # Each item travels with the tick its put began at and the tick it entered
        # the pipeline (0: nothing recorded then; see stageprof::queue).
        self._queue: queue.Queue[Tuple[T, int, int]] = queue.Queue(maxsize)
        self._name_id = _native.queue_id(name)
        self._capacity = max(maxsize, 0)
        # The session last told that this queue exists (0: none).
        self._opened_in = 0

    def put(self, item: T, block: bool = True, timeout: Optional[float] = None) -> None:
        began = _native.ticks_if_recording()
        self._queue.put((item, began, _native.item_origin(began) if began else 0), block, timeout)
        if began:
            self._opened_in = _native.queue_put(self._name_id, self._capacity, self._opened_in, began, self._queue.qsize())

    def get(self, block: bool = True, timeout: Optional[float] = None) -> T:
        began = _native.ticks_if_recording()
        item, put_began, origin = self._queue.get(block, timeout)
        if began:
            self._opened_in = _native.queue_got(
                self._name_id, self._capacity, self._opened_in, began, put_began, origin, self._queue.qsize()
            )
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
