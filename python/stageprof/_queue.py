"""``stageprof.Queue``: a ``queue.Queue`` that says how the stages it joins
wait on each other.

It has ``queue.Queue``'s methods and exceptions (blocking, timeouts,
``task_done``, ``join``, ``queue.Full`` and ``queue.Empty``); the queue
itself lives in the Rust extension, so a put or a get is one call, and each
item travels with the tick its put began at. Each item put and got while a
session records is recorded into it: how long the put waited for room and
the get for an item, how many items the queue held after, and how long the
item was in it (from the start of its put, as for Rust's
``stageprof::queue``). The report's ``queues`` turn that into depth over
time, time full and empty, residence and who waited. A queue says it exists
(name and capacity) in each session that sees it used, so one made before
``stageprof.init()`` keeps its capacity in the report. A put, get or join
that waits lets the GIL go and still answers Ctrl-C.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Optional, TypeVar

from . import _native

T = TypeVar("T")


class Queue(_native.Queue, Generic[T]):
    """A FIFO queue named ``name`` in the report, holding at most ``maxsize``
    items (0: no limit), with ``queue.Queue``'s methods and exceptions
    (``queue.Full``, ``queue.Empty``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        # The item type, for type checkers; the methods are the extension's.
        def put(self, item: T, block: bool = True, timeout: Optional[float] = None) -> None: ...
        def get(self, block: bool = True, timeout: Optional[float] = None) -> T: ...
        def put_nowait(self, item: T) -> None: ...
        def get_nowait(self) -> T: ...
