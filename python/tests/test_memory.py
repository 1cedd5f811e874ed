"""Host memory per Python stage: Python objects, numpy arrays and torch CPU
tensors of 1 MB or more show within 5% of their size as Python itself
reports it (``nbytes``, ``sys.getsizeof``), kept (net) or let go (peak only)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, List

import pytest

import stageprof
from conftest import stage_of

np = pytest.importorskip("numpy")


def within(got: int, expected: int) -> bool:
    return abs(got - expected) <= 0.05 * expected


def test_objects_arrays_and_tensors_show_within_5_percent(session: stageprof.Session) -> None:
    kept: List[Any] = []
    with stageprof.stage("numpy_kept"):
        kept.append(np.ones(2_000_000))
    with stageprof.stage("numpy_temporary"):
        temporary = np.ones(4_000_000)
        del temporary
    with stageprof.stage("list_kept"):
        kept.append([None] * 1_000_000)
    with stageprof.stage("bytes_temporary"):
        data = bytes(10_000_000)
        del data
    with stageprof.stage("outer"):
        with stageprof.stage("inner"):
            kept.append(bytearray(3_000_000))
    report = session.finish()
    numpy_kept = stage_of(report, "numpy_kept")
    assert within(numpy_kept["host_mem_net_bytes"], kept[0].nbytes)
    assert within(numpy_kept["host_mem_peak_bytes"], kept[0].nbytes)
    numpy_temporary = stage_of(report, "numpy_temporary")
    assert within(numpy_temporary["host_mem_peak_bytes"], 4_000_000 * 8)
    assert abs(numpy_temporary["host_mem_net_bytes"]) < 0.05 * 4_000_000 * 8
    assert within(stage_of(report, "list_kept")["host_mem_net_bytes"], sys.getsizeof(kept[1]))
    bytes_temporary = stage_of(report, "bytes_temporary")
    assert within(bytes_temporary["host_mem_peak_bytes"], 10_000_000)
    assert abs(bytes_temporary["host_mem_net_bytes"]) < 500_000
    # A nested stage's memory counts in its parent too.
    for path in ("outer", "outer/inner"):
        assert within(stage_of(report, path)["host_mem_net_bytes"], sys.getsizeof(kept[2]))
    assert report.summary["memory_tracked"] is True


def test_torch_cpu_tensors(session: stageprof.Session) -> None:
    torch = pytest.importorskip("torch")
    kept = []
    with stageprof.stage("tensor_kept"):
        kept.append(torch.ones(1_000_000, dtype=torch.float32))
    with stageprof.stage("tensor_temporary"):
        t = torch.empty(2_000_000, dtype=torch.float64)
        del t
    report = session.finish()
    assert within(stage_of(report, "tensor_kept")["host_mem_net_bytes"], 4_000_000)
    temporary = stage_of(report, "tensor_temporary")
    assert within(temporary["host_mem_peak_bytes"], 16_000_000)
    assert abs(temporary["host_mem_net_bytes"]) < 800_000


def test_each_thread_counts_its_own_and_the_driving_thread_sees_all(session: stageprof.Session) -> None:
    kept = []

    def worker() -> None:
        with stageprof.stage("worker"):
            kept.append(np.ones(1_000_000))

    with stageprof.stage("driver"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    report = session.finish()
    driver = stage_of(report, "driver")
    # The driving thread's own heap did not hold the worker's array; all threads' heap did.
    assert driver["host_mem_net_bytes"] < 1_000_000
    assert within(driver["process_mem_net_bytes"], 8_000_000)
    assert within(stage_of(report, "worker")["host_mem_net_bytes"], 8_000_000)


def test_memory_can_be_switched_off(tmp_path: Path) -> None:
    s = stageprof.init(out_dir=tmp_path, formats=["summary"], memory=False)
    with stageprof.stage("x"):
        kept = np.ones(1_000_000)
    report = s.finish()
    assert kept.nbytes == 8_000_000
    assert stage_of(report, "x")["host_mem_net_bytes"] is None
