"""stageprof.sweep: one callable at several batch sizes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List

import pytest

import stageprof


def test_each_size_is_timed_and_its_stages_and_memory_reported(tmp_path: Path) -> None:
    seen: List[int] = []
    kept: List[bytes] = []

    def step(batch: int) -> Dict[str, float]:
        seen.append(batch)
        with stageprof.stage("load"):
            kept.append(bytes(batch * 100_000))
            time.sleep(0.002)
        with stageprof.stage("compute"):
            time.sleep(0.001 * batch)
        return {"items": float(batch)}

    result = stageprof.sweep(step, [1, 4, 8], repeats=3, warmup=1, out_dir=str(tmp_path))
    # One warm-up and three timed calls for each size, in order.
    assert seen == [1] * 4 + [4] * 4 + [8] * 4
    assert [p.batch_size for p in result.points] == [1, 4, 8]
    for p in result.points:
        assert p.error is None and p.seconds is not None and p.throughput is not None
        assert p.throughput == pytest.approx(p.batch_size / p.seconds)
        # compute sleeps batch ms a call: its mean per call is at least that.
        assert p.stage_ms["compute"] >= p.batch_size * 1.0
        assert p.extra == {"items": float(p.batch_size)}
        # load keeps batch * 100 kB a call: its heap peak shows it.
        assert p.host_peak_bytes is not None and p.host_peak_bytes >= p.batch_size * 100_000
        report = stageprof.read(tmp_path / f"batch-{p.batch_size}" / "profile.stgp")
        assert report.frames["count"] == 3
    assert result.best in (1, 4, 8)
    assert "fastest: batch size" in str(result)
    assert stageprof.current() is None


def test_a_size_out_of_memory_is_a_result_and_larger_ones_are_not_tried(tmp_path: Path) -> None:
    tried: List[int] = []

    def step(batch: int) -> None:
        tried.append(batch)
        if batch >= 4:
            raise MemoryError(f"cannot allocate {batch} GiB")

    result = stageprof.sweep(step, [1, 2, 4, 8], repeats=2, warmup=0, out_dir=str(tmp_path))
    assert [p.error is None for p in result.points] == [True, True, False, False]
    assert result.points[2].error == "out of memory: cannot allocate 4 GiB"
    assert result.points[3].error == "not tried: batch size 4 did not fit"
    assert 8 not in tried
    assert result.best in (1, 2)


def test_memory_without_speed_is_named() -> None:
    from stageprof._sweep import SweepPoint, _memory_without_speed

    def point(size: int, throughput: float, memory: int) -> SweepPoint:
        return SweepPoint(size, seconds=size / throughput, throughput=throughput, gpu_peak_bytes=memory)

    ran = [point(1, 10, 100), point(2, 19, 110), point(4, 30, 150), point(8, 30.5, 300), point(16, 30.2, 600)]
    assert _memory_without_speed(ran) == 4
    assert _memory_without_speed([point(1, 10, 100), point(2, 20, 200)]) is None


def test_other_errors_propagate_and_a_running_session_is_refused(tmp_path: Path) -> None:
    def broken(batch: int) -> None:
        raise KeyError("a bug in the pipeline")

    with pytest.raises(KeyError):
        stageprof.sweep(broken, [1], out_dir=str(tmp_path))
    assert stageprof.current() is None
    s = stageprof.init(out_dir=tmp_path / "s", formats=["summary"])
    try:
        with pytest.raises(RuntimeError, match="finish the running session first"):
            stageprof.sweep(lambda b: None, [1])
    finally:
        s.finish()


def test_items_per_call_sets_what_throughput_counts(tmp_path: Path) -> None:
    result = stageprof.sweep(lambda b: time.sleep(0.001), [2, 4], repeats=2, warmup=0, out_dir=str(tmp_path), items_per_call=1)
    for p in result.points:
        assert p.seconds is not None
        assert p.throughput == pytest.approx(1 / p.seconds)


def test_each_stage_gpu_peak_per_size_from_the_allocator_trace(tmp_path: Path) -> None:
    from conftest import FakeAllocator, fake_torch_cuda

    mib = 1 << 20
    allocator = FakeAllocator()

    def step(batch: int) -> None:
        with stageprof.stage("upload"):
            allocator.event("alloc", mib)
        with stageprof.stage("sweep"):
            # A batch's worth held at once, then let go; the upload stays.
            for _ in range(batch):
                allocator.event("alloc", 2 * mib)
            for _ in range(batch):
                allocator.event("free_requested", 2 * mib)
        allocator.event("free_requested", mib)

    with fake_torch_cuda(**allocator.cuda_attrs()):
        result = stageprof.sweep(step, [1, 2, 4], repeats=2, warmup=1, out_dir=str(tmp_path))
    assert [p.stage_gpu_peak_bytes["sweep"] for p in result.points] == [2 * mib, 4 * mib, 8 * mib]
    assert [p.stage_gpu_peak_bytes["upload"] for p in result.points] == [mib] * 3
    # The whole call's peak, by the allocator's own counters around it.
    assert [p.gpu_peak_bytes for p in result.points] == [3 * mib, 5 * mib, 9 * mib]
