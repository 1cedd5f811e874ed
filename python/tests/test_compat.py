"""Code written against the user's planning notes runs by changing its
import to stageprof.compat, and its figures are stageprof's."""

from __future__ import annotations

import json
import time
from pathlib import Path

from stageprof.compat import GPUProfiler, PipelineProfiler, ProfileReport, StageProfile, format_report, get_profiler


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_the_gpu_profilers_calls_as_the_notes_use_them(tmp_path: Path) -> None:
    profiler = GPUProfiler(enabled=True, device_id=0, out_dir=str(tmp_path))
    with profiler.profile("matrix_multiply", device="gpu", size=1024):
        spin(0.02)
    for _ in range(2):
        with profiler.profile("matrix_multiply", device="gpu"):
            spin(0.02)
    with profiler.profile("graph_search", device="cpu"):
        spin(0.1)

    @profiler.profile_function(operation="decorated_func", device="gpu")
    def decorated(x: int) -> int:
        return 2 * x + 1

    assert [decorated(i) for i in range(5)] == [1, 3, 5, 7, 9]
    summary = profiler.get_summary()
    mm = summary["matrix_multiply"]
    assert mm.call_count == 3
    assert 60.0 <= mm.total_time_ms < 200.0
    assert mm.min_time_ms <= mm.avg_time_ms <= mm.max_time_ms
    assert abs(mm.avg_time_ms * 3 - mm.total_time_ms) < 0.01
    assert summary["decorated_func"].call_count == 5
    top = profiler.get_bottlenecks(top_n=2)
    assert [p.operation for p in top] == ["graph_search", "matrix_multiply"]
    profiler.print_summary()
    profiler.print_bottlenecks(top_n=2)
    out = tmp_path / "profiling_data.json"
    profiler.export_json(out)
    data = json.loads(out.read_text())
    assert data["summary"]["decorated_func"]["call_count"] == 5
    assert data["stageprof"]["schema_version"] == 1


def test_disabled_records_nothing_and_the_global_one_is_one(tmp_path: Path) -> None:
    off = GPUProfiler(enabled=False)
    with off.profile("ignored"):
        pass
    assert get_profiler() is get_profiler(enabled=True)


def test_the_pipeline_profiler_and_its_report(tmp_path: Path) -> None:
    with PipelineProfiler(activities=["cpu", "cuda"], profile_memory=True, output_dir=tmp_path) as p:
        with p.stage("undistortion"):
            spin(0.01)
        with p.stage("depth_estimation"):
            with p.stage("build_cost_volume"):
                spin(0.05)
            with p.stage("extract_depth"):
                spin(0.02)
        with p.stage("fusion"):
            spin(0.005)
    report = p.get_report()
    assert isinstance(report, ProfileReport)
    assert isinstance(report.stages["undistortion"], StageProfile)
    cost = report.stages["depth_estimation/build_cost_volume"]
    assert cost.name == "build_cost_volume" and cost.cpu_time_ms >= 50.0
    depth = report.stages["depth_estimation"]
    assert abs(depth.self_cpu_time_ms - (depth.cpu_time_ms - cost.cpu_time_ms - report.stages["depth_estimation/extract_depth"].cpu_time_ms)) < 0.01
    names = [name for name, _, _ in report.top_bottlenecks]
    assert names == ["depth_estimation/build_cost_volume", "depth_estimation/extract_depth", "undistortion"]
    times = [ms for _, ms, _ in report.top_bottlenecks]
    assert times == sorted(times, reverse=True)
    assert report.device == "cpu" and report.total_time_ms >= 85.0
    text = format_report(report)
    assert "#1 depth_estimation/build_cost_volume" in text and "fusion" in text
    trace = tmp_path / "trace.json"
    p.export_chrome_trace(trace)
    events = json.loads(trace.read_text())["traceEvents"]
    assert {"undistortion", "build_cost_volume", "fusion"} <= {e.get("name") for e in events}
