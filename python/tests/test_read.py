"""stageprof.read(): real PyTorch traces against figures computed here from
the raw JSON, several files as ranks, and files that are not profiles."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

import stageprof
from conftest import FIXTURES, stage_of

INFERENCE = FIXTURES / "inference.pt.trace.json.gz"


def raw_events(path: Path) -> list[dict[str, object]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        # Timestamps as decimal text: Kineto writes more digits than a float keeps.
        trace = json.load(f, parse_float=Decimal)
    events: list[dict[str, object]] = trace["traceEvents"]
    return events


def test_a_pytorch_trace_against_its_raw_events() -> None:
    events = raw_events(INFERENCE)
    annotations = [e for e in events if e.get("cat") == "user_annotation" and e.get("ph") == "X"]
    calls: dict[str, int] = defaultdict(int)
    wall: dict[str, int] = defaultdict(int)
    for e in annotations:
        name = str(e["name"])
        if name.startswith("ProfilerStep#"):
            continue
        calls[name] += 1
        wall[name] += int(Decimal(str(e["dur"])) * 1000)
    steps = [e for e in annotations if str(e["name"]).startswith("ProfilerStep#")]

    report = stageprof.read(INFERENCE)
    assert report.frames["count"] == len(steps) == 3
    by_name: dict[str, list[dict[str, object]]] = defaultdict(list)
    for s in report.stages:
        by_name[str(s["name"])].append(s)
    for name, expected_calls in calls.items():
        got = by_name[name]
        assert sum(int(s["calls"]) for s in got) == expected_calls, name  # type: ignore[call-overload]
        assert sum(int(s["wall_ns"]) for s in got) == wall[name], name  # type: ignore[call-overload]
    assert stage_of(report, "depth_estimation/build_cost_volume/warp")["calls"] == 12
    assert report.summary["source"].startswith("pytorch profiler (kineto) (")
    assert "depth_estimation" in str(report)


def test_read_matches_the_command_line_and_writes_every_format(tmp_path: Path) -> None:
    import subprocess

    report = stageprof.read(str(INFERENCE))
    report.write_json(tmp_path / "s.json")
    report.write_html(tmp_path / "r.html")
    report.write_chrome(tmp_path / "t.json")
    written = json.loads((tmp_path / "s.json").read_text())
    assert written == report.summary
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    chrome = json.loads((tmp_path / "t.json").read_text())
    names = {e.get("name") for e in chrome["traceEvents"]}
    assert {"warp", "extract_depth"} <= names
    cli = Path(__file__).resolve().parents[2] / "target" / "release" / "stageprof"
    if cli.exists():
        out = subprocess.run([cli, "report", "--format", "json", INFERENCE], capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == report.summary


def test_several_files_are_ranks() -> None:
    ranks = [FIXTURES / "frames" / "ddp_rank0.pt.trace.json.gz", FIXTURES / "frames" / "ddp_rank1.pt.trace.json.gz"]
    report = stageprof.read(ranks)
    assert len(report.summary["ranks"]) == 2
    assert "== rank 0" in str(report) and "== rank 1" in str(report)
    with pytest.raises(ValueError, match="several ranks"):
        report.stages


def test_a_directorys_json_that_is_no_trace_is_skipped_with_a_warning(tmp_path: Path) -> None:
    for rank in (0, 1):
        name = f"ddp_rank{rank}.pt.trace.json.gz"
        (tmp_path / name).write_bytes((FIXTURES / "frames" / name).read_bytes())
    (tmp_path / "config.json").write_text('{"lr": 0.1}')
    with pytest.warns(UserWarning, match=r"skipped .*config\.json: JSON, but not a trace"):
        report = stageprof.read(tmp_path)
    files = [r["file"] for r in report.summary["ranks"]]
    assert len(files) == 2 and files[0].endswith("ddp_rank0.pt.trace.json.gz"), files
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "config.json").write_text('{"lr": 0.1}')
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(ValueError, match="holds no profiles"):
        stageprof.read(alone)


def test_what_is_not_a_profile_is_an_error_naming_the_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a trace at all\n")
    with pytest.raises(ValueError, match="notes.txt: not a JSON trace"):
        stageprof.read(notes)
    cut = tmp_path / "cut.json"
    cut.write_bytes(gzip.decompress(INFERENCE.read_bytes())[:5000])
    # A trace cut short is reported up to the cut, with a warning that says where.
    warnings = stageprof.read(cut).summary["warnings"]
    assert any("cut short" in w and "reporting the" in w for w in warnings), warnings
    empty = tmp_path / "empty.json"
    empty.write_text('{"other": [1, 2]}')
    with pytest.raises(ValueError, match="empty.json: JSON, but not a trace"):
        stageprof.read(empty)
    with pytest.raises(OSError, match="missing.json"):
        stageprof.read(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="at least one path"):
        stageprof.read([])


def test_a_python_session_reads_back_the_same(tmp_path: Path) -> None:
    s = stageprof.init(out_dir=tmp_path, formats=["native", "summary"])
    for _ in range(3):
        with stageprof.frame():
            with stageprof.stage("a"):
                with stageprof.stage("b"):
                    pass
    finished = s.finish()
    again = stageprof.read(tmp_path / "profile.stgp")
    assert [(st["path"], st["calls"], st["wall_ns"]) for st in again.stages] == [
        (st["path"], st["calls"], st["wall_ns"]) for st in finished.stages
    ]
    assert json.loads((tmp_path / "summary.json").read_text())["stages"] == finished.stages
    assert finished.summary["source"] == "stageprof (python)"
    assert again.summary["source"] == f"stageprof (python) ({tmp_path / 'profile.stgp'})"
    # The report's hints speak Python to a Python run.
    assert "stageprof.init(cpu_time=True) turns it on" in str(finished)


def test_to_pandas_holds_the_summarys_rows() -> None:
    pytest.importorskip("pandas")
    report = stageprof.read(INFERENCE)
    frames = report.to_pandas()
    assert len(frames["stages"]) == len(report.stages)
    assert list(frames["stages"]["calls"]) == [s["calls"] for s in report.stages]
    assert len(frames["frames"]) == report.frames["count"] == 3
    kernels = sum(len(s["top_kernels"]) for s in report.stages)
    assert len(frames["kernels"]) == kernels > 0
