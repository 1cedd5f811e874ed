"""Stages recorded from Python: exact counts across threads and nesting, the
decorator on every kind of callable, exceptions, and bad arguments."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

import stageprof
from conftest import stage_of


def test_counts_are_exact_across_threads_and_nesting(session: stageprof.Session) -> None:
    def work(n: int) -> None:
        for _ in range(n):
            with stageprof.stage("outer"):
                with stageprof.stage("inner"):
                    pass
                with stageprof.stage("inner"):
                    pass

    threads = [threading.Thread(target=work, args=(1000 * (i + 1),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = session.finish()
    # 1000 + 2000 + 3000 + 4000 calls of outer, each with two inner calls.
    assert stage_of(report, "outer")["calls"] == 10_000
    assert stage_of(report, "outer/inner")["calls"] == 20_000
    assert stage_of(report, "outer")["threads"] == 4
    assert report.summary["dropped_events"] == 0


def test_wall_time_holds_the_nested_time(session: stageprof.Session) -> None:
    import time

    with stageprof.stage("parent"):
        with stageprof.stage("child"):
            time.sleep(0.02)
        time.sleep(0.01)
    report = session.finish()
    parent, child = stage_of(report, "parent"), stage_of(report, "parent/child")
    assert child["wall_ns"] >= 20_000_000
    assert parent["wall_ns"] >= child["wall_ns"] + 10_000_000
    assert parent["self_ns"] == parent["wall_ns"] - child["wall_ns"]


def test_an_exception_marks_the_stage_and_propagates_unchanged(session: stageprof.Session) -> None:
    error = ValueError("the pipeline's own error")
    with pytest.raises(ValueError) as caught:
        with stageprof.stage("failing"):
            with stageprof.stage("deeper"):
                raise error
    assert caught.value is error
    with stageprof.stage("failing"):
        pass
    report = session.finish()
    assert stage_of(report, "failing")["calls"] == 2
    assert stage_of(report, "failing")["unwound"] == 1
    assert stage_of(report, "failing/deeper")["unwound"] == 1


class Model:
    @stageprof.profile
    def method(self, x: int) -> int:
        return x + 1

    @staticmethod
    @stageprof.profile("static")
    def static(x: int) -> int:
        return x * 2

    @classmethod
    @stageprof.profile
    def klass(cls, x: int) -> int:
        return x - 1


@stageprof.profile
def plain(x: int) -> int:
    return x


@stageprof.profile("numbers")
def numbers(n: int) -> Iterator[int]:
    for i in range(n):
        yield i
    return


@stageprof.profile("echo")
def echo() -> Iterator[Any]:
    received = []
    while True:
        try:
            value = yield len(received)
        except KeyError:
            received.append("thrown")
            continue
        if value is None:
            return received
        received.append(value)


@stageprof.profile
async def fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x * 10


@stageprof.profile("agen")
async def agen(n: int) -> Any:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def test_the_decorator_on_every_kind_of_callable(session: stageprof.Session) -> None:
    m = Model()
    assert [m.method(1), Model.static(3), Model.klass(5), plain(7)] == [2, 6, 4, 7]
    assert list(numbers(4)) == [0, 1, 2, 3]
    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError) == 2
    with pytest.raises(StopIteration) as done:
        gen.send(None)
    assert done.value.value == ["a", "thrown"]

    async def main() -> list[int]:
        got = [await fetch(1), await fetch(2)]
        got += [i async for i in agen(3)]
        return got

    assert asyncio.run(main()) == [10, 20, 0, 1, 2]
    report = session.finish()
    name = f"{__name__}."
    assert stage_of(report, name + "Model.method")["calls"] == 1
    assert stage_of(report, "static")["calls"] == 1
    assert stage_of(report, name + "Model.klass")["calls"] == 1
    assert stage_of(report, name + "plain")["calls"] == 1
    # A generator's stage is each resumption: 4 values, then the one that ends it.
    assert stage_of(report, "numbers")["calls"] == 5
    assert stage_of(report, "echo")["calls"] == 4
    assert stage_of(report, name + "fetch")["calls"] == 2
    assert stage_of(report, "agen")["calls"] == 4
    assert plain.__name__ == "plain" and fetch.__name__ == "fetch"


def test_frames_and_counters(session: stageprof.Session) -> None:
    for i in range(7):
        with stageprof.frame():
            with stageprof.stage("step"):
                stageprof.counter("queue", i)
    report = session.finish()
    assert report.frames["count"] == 7
    assert len(report.frames["each"]) == 7
    assert stage_of(report, "step")["calls"] == 7
    queue = next(c for c in report.summary["counters"] if c["name"] == "queue")
    assert (queue["samples"], queue["min"], queue["max"], queue["last"]) == (7, 0, 6, 6)


def test_recording_switched_off_and_on_at_run_time(session: stageprof.Session) -> None:
    for i in range(10):
        stageprof.set_enabled(i % 2 == 0)
        assert stageprof.is_recording() == (i % 2 == 0)
        with stageprof.frame():
            for _ in range(i + 1):
                with stageprof.stage("step"):
                    pass
    stageprof.set_enabled(True)
    report = session.finish()
    # Frames 0, 2, 4, 6, 8 recorded, with 1 + 3 + 5 + 7 + 9 steps.
    assert report.summary["frames"]["count"] == 5
    (step,) = report.stages
    assert step["calls"] == 25


def test_bad_names_and_settings_are_errors_that_name_them(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stage name must be a str, not int"):
        stageprof.stage(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stage name must be a str, not list"):
        stageprof.stage(["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown setting \"sample_evry\""):
        stageprof.init(sample_evry=2)
    with pytest.raises(ValueError, match="sample_every"):
        stageprof.init(sample_every="often")
    with pytest.raises(ValueError, match="kernel_every"):
        stageprof.init(kernel_every=-1)
    with pytest.raises(TypeError, match="setting \"out_dir\" must be"):
        stageprof.init(out_dir=object())
    with pytest.raises(TypeError, match="takes a function or a stage name"):
        stageprof.profile(3)  # type: ignore[call-overload]
    assert stageprof.current() is None


def test_stages_outside_a_session_record_nothing_and_warn_once() -> None:
    import stageprof as sp

    sp._warned_inactive = False  # type: ignore[attr-defined]
    with pytest.warns(RuntimeWarning, match="no session is running"):
        with sp.stage("lonely"):
            pass
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sp.stage("lonely"):
            pass
    assert not sp.is_recording()


def test_finish_twice_returns_the_same_report(tmp_path: Path) -> None:
    s = stageprof.init(out_dir=tmp_path, formats=["summary"])
    with stageprof.stage("x"):
        pass
    first = s.finish()
    assert s.finish() is first
    assert stageprof.current() is None
    assert (tmp_path / "summary.json").exists()


def test_thread_cpu_time_is_switchable(tmp_path: Path) -> None:
    import time

    s = stageprof.init(out_dir=tmp_path, formats=["summary"], cpu_time=True)
    # The thread's CPU time read by the test itself just inside each stage:
    # a busy loop of 50 ms of CPU, then a sleep (machines under load stretch wall time, not this).
    with stageprof.stage("busy"):
        began = time.thread_time_ns()
        while time.thread_time_ns() - began < 50_000_000:
            pass
        busy_truth = time.thread_time_ns() - began
    with stageprof.stage("asleep"):
        began = time.thread_time_ns()
        time.sleep(0.05)
        asleep_truth = time.thread_time_ns() - began
    report = s.finish()
    busy, asleep = stage_of(report, "busy"), stage_of(report, "asleep")
    # stageprof's reads sit just outside the test's: a little more, never less.
    assert busy_truth <= busy["cpu_ns"] <= busy_truth + 2_000_000, (busy["cpu_ns"], busy_truth)
    assert asleep_truth <= asleep["cpu_ns"] <= asleep_truth + 2_000_000, (asleep["cpu_ns"], asleep_truth)
    assert asleep["cpu_ns"] < 0.2 * asleep["wall_ns"]
    assert report.summary["cpu_time"] is True
    off = stageprof.init(out_dir=tmp_path / "off", formats=["summary"])
    with stageprof.stage("busy"):
        pass
    assert stage_of(off.finish(), "busy")["cpu_ns"] is None


def test_stages_in_asyncio_tasks_nest_per_task(session: stageprof.Session) -> None:
    import time

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    async def request(delay: float) -> None:
        with stageprof.stage("request"):
            with stageprof.stage("fetch"):
                await asyncio.sleep(delay)
            with stageprof.stage("parse"):
                spin(0.01)
                await asyncio.sleep(0)

    async def main() -> None:
        with stageprof.stage("batch"):
            await asyncio.gather(request(0.03), request(0.02), request(0.01))

    with stageprof.stage("outer"):
        asyncio.run(main())
    report = session.finish()
    # Three tasks' stages interleaved on one thread, each nested as its own code says.
    assert stage_of(report, "outer/batch")["calls"] == 1
    request_ = stage_of(report, "outer/batch/request")
    fetch = stage_of(report, "outer/batch/request/fetch")
    parse = stage_of(report, "outer/batch/request/parse")
    assert (request_["calls"], fetch["calls"], parse["calls"]) == (3, 3, 3)
    assert [s["unfinished"] for s in (request_, fetch, parse)] == [0, 0, 0]
    # Awaiting is idle: fetch waited 60 ms in all and ran almost none of it; parse ran its 30 ms.
    assert fetch["wall_ns"] >= 60_000_000 and fetch["busy_ns"] < 10_000_000
    assert parse["busy_ns"] >= 30_000_000
    assert fetch["idle_ns"] == fetch["wall_ns"] - fetch["busy_ns"]
    assert stage_of(report, "outer")["calls"] == 1


def test_settings_merge_over_the_config_file_and_the_environment(tmp_path: Path) -> None:
    import json
    import os

    from conftest import run_python

    (tmp_path / "stageprof.toml").write_text('formats = ["summary"]\nsample_every = 2\ncpu_time = true\n')
    code = """
        import stageprof
        s = stageprof.init(cpu_time=False)
        for _ in range(4):
            with stageprof.frame():
                with stageprof.stage("step"):
                    pass
        s.finish()
        """
    env_out = tmp_path / "from-env"
    os.environ["STAGEPROF_OUT"] = str(env_out)
    try:
        done = run_python(code, cwd=tmp_path)
    finally:
        del os.environ["STAGEPROF_OUT"]
    assert done.returncode == 0, done.stderr
    summary = json.loads((env_out / "summary.json").read_text())
    # The file's formats and sampling, the environment's directory, the keyword's cpu_time.
    assert not (env_out / "profile.stgp").exists()
    assert (summary["frames"]["count"], summary["frames"]["sampled"]) == (4, 2)
    assert summary["stages"][0]["calls"] == 2
    assert summary["cpu_time"] is False


def test_the_table_fits_its_width_and_shows_the_chosen_columns(session: stageprof.Session) -> None:
    with stageprof.stage("a_stage_with_a_rather_long_name_that_needs_cutting_in_the_middle"):
        pass
    report = session.finish()

    def header(table: str) -> list[str]:
        rows = ([cell.strip(" │") for cell in line.split("┆")] for line in table.splitlines())
        return next(row for row in rows if row[0] == "stage")

    fitted = report.table(width=60)
    assert all(len(line) <= 60 for line in fitted.splitlines()), fitted
    assert header(report.table(columns="calls,p95_ns")) == ["stage", "calls", "p95"]
    # Every measured column, whatever the width: more than the fitted ones.
    assert len(header(report.table(columns="wide"))) > len(header(report.table(width=100)))
    with pytest.raises(ValueError, match='no column "nope"; the columns are: .*calls'):
        report.table(columns="calls,nope")


def test_a_bounded_run_counts_every_call_and_keeps_some_raw_events(tmp_path: Path) -> None:
    import json

    out = tmp_path / "bounded"
    s = stageprof.init(out_dir=out, formats=["native", "summary"], max_disk_mb=1, gpu="off", rss_sample_ms=0)
    frames, calls = 100, 500
    for _ in range(frames):
        with stageprof.frame():
            for _ in range(calls):
                with stageprof.stage("step"):
                    pass
    s.finish()
    summary = json.loads((out / "summary.json").read_text())
    assert stage_of_summary(summary, "step")["calls"] == frames * calls
    assert summary["frames"]["count"] == frames
    kept = summary["raw_events_kept"]
    parts = sorted(p.name for p in out.glob("*.stgp"))
    assert parts == sorted(Path(p["path"]).name for p in kept["parts"])
    assert kept["parts_written"] > len(parts)
    assert sum(p.stat().st_size for p in out.glob("*.stgp")) <= kept["limit_bytes"] * 5 // 4
    # Read back, the directory is one profile: its kept parts in the order written (not ranks).
    numbers = sorted(int(p.split(".")[-2]) for p in parts)
    again = stageprof.read(out)
    said = [w for w in again.summary["warnings"] if "these figures cover parts" in str(w)]
    assert len(said) == 1 and ", ".join(map(str, numbers)) in str(said[0]), again.summary["warnings"]
    assert 0 < stage_of_summary(again.summary, "step")["calls"] < frames * calls


def test_a_bound_takes_gpu_events_not_kernels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='max_disk_mb.*gpu = "events"'):
        stageprof.init(out_dir=tmp_path, max_disk_mb=8, gpu="kernels")
    # "auto" picks what a bounded run can join while it records.
    s = stageprof.init(out_dir=tmp_path, max_disk_mb=8)
    try:
        assert s._native.gpu == "events"
    finally:
        s.finish()


def stage_of_summary(summary: Dict[str, Any], path: str) -> Dict[str, Any]:
    (found,) = [st for st in summary["stages"] if "/".join(st["path"]) == path]
    return found
