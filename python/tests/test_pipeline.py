"""A pipeline of Python threads joined by stageprof.Queue, with a known
bottleneck: the report names the stage (by its threading name) or the queue
that limits it, and its prediction of throughput matches the rate the sink
measures with its own clock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import stageprof

ITEMS = 40


@dataclass(frozen=True)
class Work:
    """Seconds each stage sleeps an item (sleeping: a loaded machine stretches it little)."""

    source: float = 0.0
    model: float = 0.024
    raw_capacity: int = 2
    # After every `burst` items the source pauses `pause` seconds.
    burst: int = 0
    pause: float = 0.0


def run(tmp_path: Path, work: Work) -> Tuple[Dict[str, Any], float, List[float]]:
    """source -> raw -> model -> features -> sink; returns the summary's
    pipeline and, by the test's own clock, the items a second the sink
    received (first to last) and each item's seconds from the start of its
    put into raw to its arrival at the sink."""
    session = stageprof.init(out_dir=tmp_path, formats=["summary"])
    raw: stageprof.Queue[Optional[int]] = stageprof.Queue("raw", maxsize=work.raw_capacity)
    features: stageprof.Queue[Optional[int]] = stageprof.Queue("features", maxsize=2)
    received: List[Tuple[int, float]] = []
    sent: List[float] = []

    def source() -> None:
        for i in range(ITEMS):
            time.sleep(work.source)
            if work.burst and i % work.burst == work.burst - 1:
                time.sleep(work.pause)
            sent.append(time.perf_counter())
            raw.put(i)
        raw.put(None)

    def model() -> None:
        while (item := raw.get()) is not None:
            time.sleep(work.model)
            features.put(item * 2)
        features.put(None)

    def sink() -> None:
        while (item := features.get()) is not None:
            received.append((item, time.perf_counter()))

    threads = [threading.Thread(target=f, name=f.__name__) for f in (source, model, sink)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = session.finish()
    assert [i for i, _ in received] == [2 * i for i in range(ITEMS)], "every item once, in order"
    seconds = received[-1][1] - received[0][1]
    pipeline: Dict[str, Any] = report.summary["pipeline"]
    return pipeline, (len(received) - 1) / seconds, [at - sent[i // 2] for i, at in received]


def stage(pipeline: Dict[str, Any], name: str) -> Dict[str, Any]:
    (found,) = [s for s in pipeline["stages"] if s["thread"] == name]
    return found


def predicted_with(pipeline: Dict[str, Any], name: str, factor: float) -> float:
    """The bottleneck model by hand from the stages' service times: the smallest capacity."""
    return min(
        1e9 / (s["service_ns"] * (factor if s["thread"] == name else 1.0))
        for s in pipeline["stages"]
        if s["service_ns"]
    )


def test_the_slow_stage_is_named_by_its_thread_and_its_speed_up_predicted(tmp_path: Path) -> None:
    pipeline, sink_rate, latencies = run(tmp_path, Work())
    assert {s["thread"] for s in pipeline["stages"]} == {"source", "model", "sink"}
    limit = pipeline["limiting_stage"]
    assert limit["thread"] == "model" and limit["busy_pct"] > 80, limit
    assert stage(pipeline, "model")["items"] == ITEMS + 1  # the None that ends the stream is an item too
    assert pipeline["undersized_queues"] == []
    # End-to-end latency against the test's clock: the median item's time from raw to the sink.
    latencies.sort()
    median = latencies[(len(latencies) + 1) // 2 - 1] * 1e9
    assert pipeline["latency"]["items"] == ITEMS + 1  # and the None that ends the stream
    assert abs(pipeline["latency"]["p50_ns"] - median) < 0.03 * median + 500_000, (pipeline["latency"], median)
    predicted = float(pipeline["predicted_per_s"])
    assert abs(predicted / sink_rate - 1) < 0.1, (predicted, sink_rate)
    half = [s for s in pipeline["speedups"] if s["thread"] == "model" and s["faster_pct"] == 50]
    assert abs(half[0]["throughput_per_s"] / predicted_with(pipeline, "model", 0.5) - 1) < 1e-6
    for factor in (0.5, 2.0):
        _, rate, seen = run(tmp_path, replace(Work(), model=Work().model * factor))
        expected = predicted_with(pipeline, "model", factor)
        assert abs(expected / rate - 1) < 0.1, (factor, expected, rate)
        if factor == 0.5:
            # The latency stageprof predicts for the model 50% faster, against the test's clock.
            mean = sum(seen) / len(seen) * 1e9
            assert abs(half[0]["latency_ns"] / mean - 1) < 0.15, (half[0], mean)


def test_a_slow_source_starves_the_stages_after_it(tmp_path: Path) -> None:
    pipeline, _, _ = run(tmp_path, Work(source=0.008, model=0.0))
    limit = pipeline["limiting_stage"]
    assert limit["thread"] == "source" and limit["outputs_empty_pct"] > 50, limit


def test_a_queue_too_small_for_a_bursty_source_is_named(tmp_path: Path) -> None:
    bursty = Work(source=0.001, model=0.006, raw_capacity=1, burst=4, pause=0.024)
    small, small_rate, _ = run(tmp_path, bursty)
    assert [q["name"] for q in small["undersized_queues"]] == ["raw"], small
    large, large_rate, _ = run(tmp_path, replace(bursty, raw_capacity=ITEMS + 1))
    assert large["undersized_queues"] == []
    assert large_rate > 1.15 * small_rate, (large_rate, small_rate)
