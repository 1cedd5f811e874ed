"""``stageprof.Queue``: a ``queue.Queue`` that says how the stages it joins
wait on each other.

It is ``queue.Queue`` (same blocking, timeouts, ``task_done`` and ``join``),
and each item put and got is also recorded into the running session: how
long the put waited for room and the get for an item, how many items the
queue held after, and how long the item was in it (from the start of its
put, as for Rust's queues).
The report's ``queues`` turn that into depth over time, time full and
empty, residence and who waited, as for Rust's ``stageprof::queue``.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Optional, TypeVar

from . import _native

T = TypeVar("T")


class Queue(queue.Queue[T]):
    """A FIFO queue named ``name`` in the report, holding at most ``maxsize`` items (0: no limit)."""

    def __init__(self, name: str, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.name = name
        self._name_id = _native.queue_opened(name, max(maxsize, 0))

    def put(self, item: T, block: bool = True, timeout: Optional[float] = None) -> None:
        local = self._local
        local.began = began = _native.ticks_if_recording()
        super().put(item, block, timeout)
        if began:
            _native.queue_put(self._name_id, began, local.depth)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> T:
        began = _native.ticks_if_recording()
        item = super().get(block, timeout)
        if began:
            local = self._local
            _native.queue_got(self._name_id, began, local.put_began, local.depth)
        return item

    # queue.Queue's storage hooks, called by put and get on their own
    # thread with the queue's mutex held: what they learn goes to that
    # thread's `_local` for the put or get around them.
    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        # When the put of each item began, beside it (0: nothing recorded then).
        self._put_began: collections.deque[int] = collections.deque()
        self._local = threading.local()

    def _put(self, item: T) -> None:
        super()._put(item)
        local = self._local
        self._put_began.append(local.began)
        local.depth = self._qsize()

    def _get(self) -> T:
        local = self._local
        local.put_began = self._put_began.popleft()
        item: T = super()._get()
        local.depth = self._qsize()
        return item

    def __repr__(self) -> str:
        return f"<stageprof.Queue {self.name!r}, {self.qsize()} items>"
