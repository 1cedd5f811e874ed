"""GPU recording's start from Python, where no GPU can run it: it never
raises into the pipeline, says in one line what is off, and the CPU
figures go on. (The GPU figures themselves are checked on a GPU by
python/gpu_check.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import stageprof
from conftest import fake_torch_cuda, run_python, stage_of


def test_gpu_off_never_touches_torch(tmp_path: Path) -> None:
    done = run_python(
        f"""
        import sys, stageprof
        s = stageprof.init(out_dir={str(tmp_path)!r}, formats=["summary"], gpu="off")
        with stageprof.stage("x"):
            pass
        s.finish()
        assert "torch" not in sys.modules
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_cuda_up_without_a_driver_says_so_and_the_rest_goes_on(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with fake_torch_cuda():
        s = stageprof.init(out_dir=tmp_path, formats=["summary"], gpu_memory=False)
        with stageprof.stage("cpu_work"):
            pass
        report = s.finish()
    assert stage_of(report, "cpu_work")["calls"] == 1
    assert stage_of(report, "cpu_work")["gpu_event_ns"] is None
    err = capfd.readouterr().err
    assert err.count("GPU profiling is off") == 1, err


def test_kernel_tracing_in_some_frames_is_a_setting_without_a_gpu(tmp_path: Path) -> None:
    # Where no GPU runs, kernel_every is taken, and a profile with frames has no traced frames.
    with fake_torch_cuda():
        s = stageprof.init(out_dir=tmp_path, formats=["summary"], gpu="kernels", kernel_every=4, gpu_memory=False)
        for _ in range(3):
            with stageprof.frame(), stageprof.stage("step"):
                pass
        report = s.finish()
    assert stage_of(report, "step")["calls"] == 3
    assert stage_of(report, "step")["gpu_traced_calls"] is None
    assert report.summary["frames"]["gpu_traced"] is None


def test_torch_imported_after_init_is_watched(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    done = run_python(
        f"""
        import sys, stageprof
        s = stageprof.init(out_dir={str(tmp_path)!r}, formats=["summary"])
        import torch
        assert torch.cuda._lazy_init.__name__ == "watched_lazy_init"
        with stageprof.stage("x"):
            torch.ones(10).sum()
        s.finish()
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_stages_show_in_a_torch_profiler_trace_taken_meanwhile(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    session = stageprof.init(out_dir=tmp_path / "stageprof", formats=["summary"])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            with stageprof.stage("load"):
                with stageprof.stage("decode"):
                    torch.ones(100).sum()
    with stageprof.stage("after"):
        pass
    prof.export_chrome_trace(str(tmp_path / "torch.json"))
    ours = session.finish()
    theirs = stageprof.read(tmp_path / "torch.json")
    # The same stages, read back from torch's own trace by the same reader as any PyTorch trace.
    assert stage_of(theirs, "load")["calls"] == stage_of(ours, "load")["calls"] == 3
    assert stage_of(theirs, "load/decode")["calls"] == 3
    # Once the profiler stopped, stages are plain again (and not in its trace).
    assert stage_of(ours, "after")["calls"] == 1
    assert all(s["name"] != "after" for s in theirs.stages)
