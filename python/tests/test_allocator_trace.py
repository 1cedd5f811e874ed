"""GPU memory per stage from torch's allocator trace, with an allocator
played by the test: its events are timed by the wall clock as torch times
them, and the figures each stage should get are worked out here from the
events the test made inside it. (On a GPU, gpu/python_gpu_check.py holds
the same figures to torch.cuda.max_memory_allocated around each stage.)"""

from __future__ import annotations

import json
import random
import threading
import time
import types
from pathlib import Path
from typing import Any, Optional

import pytest

import stageprof
from stageprof import _allocator_trace
from conftest import FakeAllocator, fake_torch_cuda, stage_of

KIB = 1 << 10
MIB = 1 << 20


def pause() -> None:
    # Far more than the microsecond the allocator's times are rounded to.
    time.sleep(0.003)


@pytest.mark.parametrize("max_disk_mb", [None, 1], ids=["whole file", "bounded: joined while recording"])
def test_peak_net_and_reserved_per_stage(tmp_path: Path, max_disk_mb: Optional[int]) -> None:
    allocator = FakeAllocator()
    allocator.event("segment_alloc", 2 * MIB)
    allocator.event("alloc", 300 * KIB)  # before stageprof: in the levels, in no stage
    bound = {} if max_disk_mb is None else {"max_disk_mb": max_disk_mb}
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["native", "summary", "chrome"], **bound)
        assert allocator.recording
        for _ in range(2):
            with stageprof.stage("infer"):
                pause()
                with stageprof.stage("upsample"):
                    pause()
                    allocator.event("alloc", MIB)
                    pause()
                    allocator.event("segment_alloc", 20 * MIB)
                    allocator.event("alloc", 4 * MIB)
                    pause()
                    allocator.event("free_requested", MIB)
                    pause()
                pause()
            with stageprof.stage("release"):
                pause()
                allocator.event("free_requested", 4 * MIB)
                allocator.event("free_completed", 4 * MIB)
                pause()
                allocator.event("segment_free", 20 * MIB)
                pause()
        report = s.finish()
    assert not allocator.recording, "the trace is turned off at the end"
    assert allocator.snapshots >= 1
    up = stage_of(report, "infer/upsample")
    assert up["gpu_mem_calls"] == 2
    assert up["gpu_mem_peak_bytes"] == 5 * MIB
    assert up["gpu_mem_net_bytes"] == 8 * MIB
    assert up["gpu_reserved_bytes"] == 22 * MIB
    infer = stage_of(report, "infer")
    assert (infer["gpu_mem_peak_bytes"], infer["gpu_mem_net_bytes"]) == (5 * MIB, 8 * MIB)
    release = stage_of(report, "release")
    assert (release["gpu_mem_peak_bytes"], release["gpu_mem_net_bytes"]) == (0, -8 * MIB)
    # The run's GPU memory peak: 300 kB held before, 5 MB in upsample.
    (peak,) = [p for p in report.summary["memory_peaks"] if p["pool"] == "gpu"]
    assert peak["bytes"] == 5 * MIB + 300 * KIB
    assert peak["stage_path"] == ["infer", "upsample"]
    # The Chrome trace draws the level as a counter track: the level held before, then after each event.
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    drawn = [e["args"]["bytes"] for e in events if e["name"] == "gpu memory" and e["ph"] == "C"]
    assert drawn == [300 * KIB] + allocator.drawn


@pytest.mark.parametrize("skew_us", [-40, 40], ids=["trace clock early", "trace clock late"])
def test_events_at_stage_edges_count_on_the_side_they_happened(tmp_path: Path, skew_us: int) -> None:
    """The trace's clock 40 µs off the wall clock, either way (torch's is off
    by up to its microsecond, and by the fit of its own clock to the wall
    clock): an allocation right after a stage begins and a free right
    before it ends, on two threads, still count inside the stage,
    as the stage edge each event was tagged with says."""
    allocator = FakeAllocator(skew_us=skew_us)
    sizes = {"left": 4 * KIB, "right": 8 * KIB}

    def work(side: str) -> None:
        for _ in range(5):
            with stageprof.stage(f"{side}/use"):
                allocator.event("alloc", sizes[side])
                pause()
                allocator.event("free_requested", sizes[side])
            with stageprof.stage(f"{side}/idle"):
                pause()

    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        # One thread after the other: the levels are the device's, so a stage
        # would count another thread's blocks (as max_memory_allocated does).
        for side in sizes:
            thread = threading.Thread(target=work, args=(side,))
            thread.start()
            thread.join()
        report = s.finish()
    for side, size in sizes.items():
        use, idle = stage_of(report, f"{side}/use"), stage_of(report, f"{side}/idle")
        assert (use["gpu_mem_calls"], use["gpu_mem_peak_bytes"], use["gpu_mem_net_bytes"]) == (5, size, 0), side
        assert (idle["gpu_mem_peak_bytes"], idle["gpu_mem_net_bytes"]) == (0, 0), side
    # Each thread's edges: the probe's tag, then 2 edges a call, 10 calls a thread.
    assert len([t for t in allocator.tags if t.startswith("stageprof:") and t[-1].isdigit()]) == 40


@pytest.mark.parametrize("metadata", ["global", "none"])
def test_a_torch_without_per_thread_tags_is_not_tagged(tmp_path: Path, metadata: str) -> None:
    allocator = FakeAllocator(metadata=metadata)
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        with stageprof.stage("step"):
            allocator.event("alloc", KIB)
        s.finish()
    # Global: the probe's tag, seen on this thread, then put back; none: nothing to set.
    assert allocator.tags == (["stageprof:per-thread?", ""] if metadata == "global" else [])
    assert allocator._get_memory_metadata() == ""


def windows_of_10_ms(monkeypatch: pytest.MonkeyPatch) -> FakeAllocator:
    """Windows of 10 ms, read one after another (all the time it takes may go to reading)."""
    monkeypatch.setattr(_allocator_trace, "READ_EVERY_S", 0.01)
    monkeypatch.setattr(_allocator_trace, "COST_SHARE", 1.0)
    return FakeAllocator()


def test_windows_read_while_the_pipeline_runs_lose_no_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allocator = windows_of_10_ms(monkeypatch)
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        for _ in range(20):
            with stageprof.stage("step"):
                pause()
                allocator.event("alloc", KIB)
                pause()
        report = s.finish()
    assert allocator.snapshots > 2, "read several times while running"
    step = stage_of(report, "step")
    # Levels are absolute: even an event that fell between a read and the
    # trace's emptying shows in the net of the call it was in.
    assert step["gpu_mem_calls"] == 20
    assert (step["gpu_mem_peak_bytes"], step["gpu_mem_net_bytes"]) == (KIB, 20 * KIB)


def test_windows_are_not_read_while_nothing_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allocator = windows_of_10_ms(monkeypatch)
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        stageprof.set_enabled(False)
        time.sleep(0.05)  # the window open since init is read once and the trace turned off
        snapshots = allocator.snapshots
        for _ in range(10):
            with stageprof.stage("step"):
                allocator.event("alloc", KIB)
                pause()
        assert allocator.snapshots == snapshots, "read while recording was off"
        assert not allocator.recording and not allocator.trace
        stageprof.set_enabled(True)
        time.sleep(0.05)  # the next window turns the trace back on
        with stageprof.stage("step"):
            allocator.event("alloc", KIB)
            pause()
        report = s.finish()
    assert allocator.snapshots > snapshots
    step = stage_of(report, "step")
    assert (step["calls"], step["gpu_mem_calls"], step["gpu_mem_net_bytes"]) == (1, 1, KIB)


@pytest.mark.parametrize(
    "takes",
    [frozenset({"skip_actions", "global_record_annotations"}), frozenset({"global_record_annotations"}), frozenset()],
    ids=["torch 2.11", "without skip_actions", "without either"],
)
def test_the_trace_switched_on_one_thread_and_off_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, takes: frozenset[str]
) -> None:
    allocator = windows_of_10_ms(monkeypatch)
    allocator.takes = takes
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])  # on here; windows go off and on in their thread
        for _ in range(10):
            with stageprof.stage("step"):
                pause()
                allocator.event("alloc", KIB)
                pause()

        def frames_elsewhere() -> None:
            with stageprof.frame(), stageprof.stage("other"):
                allocator.event("alloc", KIB)
                pause()

        worker = threading.Thread(target=frames_elsewhere)
        worker.start()
        worker.join()
        report = s.finish()  # off here
    assert not allocator.recording
    if "global_record_annotations" in takes:
        assert allocator.callbacks_not_found == 0, "a switch off could not find torch's callback"
        assert allocator.callback_owner is None, "torch's callback was left on"
    step, other = stage_of(report, "step"), stage_of(report, "other")
    assert (step["gpu_mem_calls"], step["gpu_mem_net_bytes"]) == (10, 10 * KIB)
    assert (other["gpu_mem_calls"], other["gpu_mem_net_bytes"]) == (1, KIB)


def test_a_read_that_fails_turns_the_trace_off_from_any_thread(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The trace goes on in init's thread; its second snapshot (reading the
    # first frame, which ends on another thread) raises.
    allocator = FakeAllocator()
    take_snapshot = allocator._snapshot

    def second_fails() -> dict[str, Any]:
        if allocator.snapshots == 1:
            allocator.snapshots += 1
            raise RuntimeError("snapshot lost")
        return take_snapshot()

    allocator._snapshot = second_fails  # type: ignore[method-assign]
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])

        def frame_elsewhere() -> None:
            with stageprof.frame(), stageprof.stage("step"):
                allocator.event("alloc", KIB)

        worker = threading.Thread(target=frame_elsewhere)
        worker.start()
        worker.join()
        with stageprof.frame(), stageprof.stage("step"):
            allocator.event("alloc", KIB)
        report = s.finish()
    # History off, torch's callback removed from the other thread, and said once; the CPU figures go on.
    assert (allocator.recording, allocator.callback_owner, allocator.callbacks_not_found) == (False, None, 0)
    assert allocator.snapshots == 2, "nothing read after the failure"
    err = capfd.readouterr().err
    assert err.count("reading torch's allocator trace failed (RuntimeError('snapshot lost'))") == 1, err
    assert stage_of(report, "step")["calls"] == 2


def test_frames_are_traced_whole_and_only_as_the_cost_share_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    # No time for reading at all: the first frame is traced, no other.
    monkeypatch.setattr(_allocator_trace, "COST_SHARE", 0.0)
    allocator = FakeAllocator()
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        with stageprof.stage("setup"):
            allocator.event("alloc", 512)  # before any frame: traced too
        for frame in range(4):
            with stageprof.frame():
                with stageprof.stage("step"):
                    pause()
                    allocator.event("alloc", KIB * (frame + 1))
                    pause()
        report = s.finish()
    step = stage_of(report, "step")
    assert step["calls"] == 4
    assert (step["gpu_mem_calls"], step["gpu_mem_peak_bytes"], step["gpu_mem_net_bytes"]) == (1, KIB, KIB)
    assert (stage_of(report, "setup")["gpu_mem_calls"], stage_of(report, "setup")["gpu_mem_net_bytes"]) == (1, 512)
    # Untraced frames left the trace off: their events were never recorded.
    assert not allocator.trace and not allocator.recording


def test_frames_not_recorded_are_not_traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every recorded frame within the reading's share of the run, however
    # slow a loaded machine reads: this test is about frames not recorded.
    monkeypatch.setattr(_allocator_trace, "COST_SHARE", 1.0)
    allocator = FakeAllocator()
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        for frame in range(6):
            # Recorded: frames 0, 3; frames 1, 2, 4, 5 not.
            stageprof.set_enabled(frame % 3 == 0)
            snapshots = allocator.snapshots
            with stageprof.frame():
                with stageprof.stage("step"):
                    pause()
                    allocator.event("alloc", KIB)
                    pause()
            if frame % 3:
                assert allocator.snapshots == snapshots, f"frame {frame}: not recorded, yet its trace was read"
        stageprof.set_enabled(True)
        report = s.finish()
    step = stage_of(report, "step")
    assert (step["calls"], step["gpu_mem_calls"], step["gpu_mem_peak_bytes"]) == (2, 2, KIB)


def test_another_allocator_or_history_already_on_is_said_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    allocator = FakeAllocator(backend="cudaMallocAsync")
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        with stageprof.stage("x"):
            allocator.event("alloc", 10)
        report = s.finish()
    assert not allocator.recording and allocator.snapshots == 0
    assert stage_of(report, "x")["gpu_mem_peak_bytes"] is None
    err = capfd.readouterr().err
    assert err.count("GPU memory per stage is off: torch's allocator is 'cudaMallocAsync'") == 1, err


def test_a_broken_allocator_module_never_raises_into_the_program(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with fake_torch_cuda(memory=types.ModuleType("torch.cuda.memory")):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        with stageprof.stage("x"):
            pass
        report = s.finish()
    assert stage_of(report, "x")["calls"] == 1
    assert "GPU memory per stage is off" in capfd.readouterr().err


def test_blocks_the_replay_cannot_size_are_said(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # An allocator that hands out exactly what is asked (not torch's 512-byte
    # blocks): the replay counts 1024 for each 1000 asked, and the totals say otherwise.
    allocator = FakeAllocator()
    with fake_torch_cuda(memory=allocator.module()):
        s = stageprof.init(out_dir=tmp_path, formats=["summary"])
        with stageprof.stage("odd"):
            for _ in range(4):
                allocator.event("alloc", 1000)
        s.finish()
    err = capfd.readouterr().err
    assert "GPU memory: 96 bytes of allocator changes are not explained by its trace" in err, err


class HostileAllocator(FakeAllocator):
    """An allocator whose snapshots hold anything: entries and segments with
    fields missing or of the wrong type, sizes and addresses past 64 bits or
    negative, unknown actions, odd metadata (a torch that changed its format,
    or a broken one)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    def number(self) -> object:
        return self.rng.choice([0, 1, -1, 512, 1 << 20, 1 << 63, (1 << 64) - 1, 1 << 64, -(1 << 63), 1 << 70, 3.5, "7", None])

    def entry(self) -> dict[str, object]:
        actions = ["alloc", "free_requested", "free_completed", "segment_alloc", "segment_free", "segment_unmap", "oom", 3]
        entry = {
            "action": self.rng.choice(actions),
            "addr": self.rng.choice([self.number(), 512 * self.rng.randrange(1 << 16)]),
            "size": self.rng.choice([self.number(), self.rng.randrange(1 << 24)]),
            "time_us": self.rng.choice([self.number(), time.time_ns() // 1000]),
            "user_metadata": self.rng.choice(["", "stageprof:1:2", "stageprof:x:-1", 5, None, "x" * 1000]),
        }
        return {k: v for k, v in entry.items() if self.rng.random() > 0.03}

    def segment(self) -> dict[str, object]:
        blocks = [{"size": self.number(), "state": self.rng.choice(["active_allocated", "inactive", 1])} for _ in range(3)]
        segment = {
            "device": self.rng.choice([0, 0, 1, self.number()]),
            "address": self.rng.choice([self.number(), 512 * self.rng.randrange(1 << 16)]),
            "allocated_size": self.number(),
            "total_size": self.number(),
            "blocks": blocks,
        }
        return {k: v for k, v in segment.items() if self.rng.random() > 0.05}

    def _snapshot(self) -> dict[str, Any]:
        self.snapshots += 1
        traces = [[self.entry() for _ in range(self.rng.randrange(20))] for _ in range(self.rng.randrange(3))]
        return {"segments": [self.segment() for _ in range(self.rng.randrange(4))], "device_traces": traces}


@pytest.mark.parametrize("seeds", [range(0, 25), range(25, 50)], ids=["seeds 0-24", "seeds 25-49"])
def test_hostile_allocator_snapshots_never_reach_the_program(
    tmp_path: Path, seeds: range, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_allocator_trace, "COST_SHARE", 1.0)  # every frame traced: every snapshot read
    read = 0
    for seed in seeds:
        allocator = HostileAllocator(seed)
        with fake_torch_cuda(memory=allocator.module()):
            s = stageprof.init(out_dir=tmp_path / str(seed), formats=["summary"])
            for _ in range(20):
                with stageprof.frame():
                    with stageprof.stage("step"):
                        pass
            report = s.finish()
        # The CPU figures go on, whatever the snapshots held; the first
        # snapshot that could not be read turned GPU memory off, said in one line.
        assert stage_of(report, "step")["calls"] == 20, seed
        err = capfd.readouterr().err
        assert err.count("GPU memory per stage is off") <= 1, (seed, err)
        read += allocator.snapshots
    assert read > len(seeds), "some sessions read on past their first snapshot"
