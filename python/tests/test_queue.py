"""stageprof.Queue: queue.Queue's behaviour, every item once, and the
report's figures for a slow and a starved consumer against waits timed
around put and get by the test."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import stageprof

ITEMS = 60
WORK = 0.002


def pipeline(name: str, produce: float, consume: float) -> Tuple[List[int], float, float]:
    """ITEMS numbers through a queue of 4; returns what came out, the
    producer's time blocked in put and the consumer's time waiting in get."""
    q: stageprof.Queue[Optional[int]] = stageprof.Queue(name, maxsize=4)
    blocked = [0.0]

    def produce_all() -> None:
        for i in range(ITEMS):
            time.sleep(produce)
            t = time.perf_counter()
            q.put(i)
            blocked[0] += time.perf_counter() - t
        q.put(None)

    producer = threading.Thread(target=produce_all)
    producer.start()
    got: List[int] = []
    waited = 0.0
    while True:
        t = time.perf_counter()
        item = q.get()
        waited += time.perf_counter() - t
        if item is None:
            break
        got.append(item)
        time.sleep(consume)
    producer.join()
    return got, blocked[0], waited


def by_name(report: stageprof.Report, name: str) -> Dict[str, Any]:
    (q,) = [q for q in report.summary["queues"] if q["name"] == name]
    return q


def test_queues_count_every_item_and_say_who_waited(tmp_path: Path) -> None:
    s = stageprof.init(out_dir=tmp_path, formats=["summary"])
    slow_got, slow_blocked, _ = pipeline("to slow consumer", 0.0, WORK)
    starved_got, _, starved_waited = pipeline("to starved consumer", WORK, 0.0)
    report = s.finish()
    assert slow_got == starved_got == list(range(ITEMS))

    slow = by_name(report, "to slow consumer")
    # The None that ends the stream is an item too.
    assert (slow["capacity"], slow["sent"], slow["received"], slow["depth_max"]) == (4, ITEMS + 1, ITEMS + 1, 4)
    assert slow["sender_blocked_ns"] == pytest.approx(slow_blocked * 1e9, rel=0.1)
    assert slow["full_pct"] > 50
    starved = by_name(report, "to starved consumer")
    assert (starved["sent"], starved["received"]) == (ITEMS + 1, ITEMS + 1)
    assert starved["receiver_waited_ns"] == pytest.approx(starved_waited * 1e9, rel=0.1)
    assert starved["empty_pct"] > 50 and starved["full_pct"] < 5


def test_it_behaves_as_queue_queue() -> None:
    q: stageprof.Queue[str] = stageprof.Queue("plain", maxsize=1)
    assert (q.maxsize, q.empty()) == (1, True)
    q.put_nowait("a")
    with pytest.raises(queue.Full):
        q.put("b", timeout=0.01)
    assert (q.qsize(), q.full()) == (1, True)
    assert q.get_nowait() == "a"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put("c")
    assert q.get() == "c"
    q.task_done()
    q.task_done()
    q.join()
    assert "plain" in repr(q)


def test_a_queue_made_before_init_keeps_its_capacity_and_items_left_are_said(tmp_path: Path) -> None:
    early: stageprof.Queue[int] = stageprof.Queue("made early", maxsize=3)
    early.put(-1)
    assert early.get() == -1
    s = stageprof.init(out_dir=tmp_path, formats=["summary"])
    for i in range(5):
        early.put(i)
        assert early.get() == i
    left: stageprof.Queue[int] = stageprof.Queue("left", maxsize=8)
    for i in range(7):
        left.put(i)
    assert [left.get() for _ in range(4)] == [0, 1, 2, 3]
    report = s.finish()
    made_early = by_name(report, "made early")
    assert (made_early["capacity"], made_early["sent"], made_early["received"]) == (3, 5, 5)
    assert made_early["full_pct"] is not None
    warnings = [str(w) for w in report.summary["warnings"]]
    assert any("3 items sent into queue left were never received" in w for w in warnings), warnings


def test_many_producers_and_consumers_move_every_item_once() -> None:
    q: stageprof.Queue[int] = stageprof.Queue("shared", maxsize=3)
    per_producer, producers, consumers = 2000, 4, 3
    got: List[List[int]] = [[] for _ in range(consumers)]

    def produce(p: int) -> None:
        for i in range(per_producer):
            q.put(p * per_producer + i)

    def consume(c: int) -> None:
        while True:
            item = q.get()
            q.task_done()
            if item < 0:
                return
            got[c].append(item)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in threads:
        t.start()
    for t in threads[:producers]:
        t.join()
    for _ in range(consumers):
        q.put(-1)
    q.join()
    for t in threads[producers:]:
        t.join()
    everything = sorted(i for items in got for i in items)
    assert everything == list(range(producers * per_producer))
    # Each consumer saw each producer's items in the order they were put.
    for items in got:
        for p in range(producers):
            mine = [i for i in items if i // per_producer == p]
            assert mine == sorted(mine)


def test_a_full_queue_blocks_the_put_until_a_get_makes_room() -> None:
    q: stageprof.Queue[int] = stageprof.Queue("one slot", maxsize=1)
    q.put(1)
    done = threading.Event()

    def second_put() -> None:
        q.put(2)
        done.set()

    t = threading.Thread(target=second_put)
    t.start()
    assert not done.wait(0.1), "the put waits while the queue is full"
    assert q.get() == 1
    assert done.wait(5)
    t.join()
    assert q.get() == 2 and q.empty()


def test_join_waits_for_every_task_done_and_bad_calls_say_what_is_wrong() -> None:
    q: stageprof.Queue[int] = stageprof.Queue("tasks")
    for i in range(3):
        q.put(i)
    joined = threading.Event()
    t = threading.Thread(target=lambda: (q.join(), joined.set()))
    t.start()
    for _ in range(3):
        q.get()
        assert not joined.wait(0.05), "join returns only once every item is done"
        q.task_done()
    assert joined.wait(5)
    t.join()
    with pytest.raises(ValueError, match="task_done\\(\\) called too many times"):
        q.task_done()
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(timeout=-1)
    # Without blocking the timeout is not looked at, as in queue.Queue.
    with pytest.raises(queue.Empty):
        q.get(False, -1)


def test_a_waiting_get_answers_signals() -> None:
    import signal

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    q: stageprof.Queue[int] = stageprof.Queue("never fed")
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.perf_counter()
        with pytest.raises(Interrupted):
            q.get()
        assert time.perf_counter() - start < 2.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
