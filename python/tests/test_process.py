"""How a run ends: every way leaves valid outputs that say how it ended,
and a forked child never writes into its parent's files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import stageprof
from conftest import run_python, stage_of

LOOP = """
import time, stageprof
stageprof.init(out_dir={out!r}, formats=["native", "summary"])
print("ready", flush=True)
while True:
    with stageprof.frame():
        with stageprof.stage("work"):
            time.sleep(0.002)
"""


def start_loop(out: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LOOP.format(out=str(out)))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits SIGINT ignored, and Python then
        # keeps it ignored: give the child the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    return child


def outputs(out: Path) -> tuple[dict[str, object], stageprof.Report]:
    summary = json.loads((out / "summary.json").read_text())
    return summary, stageprof.read(out / "profile.stgp")


@pytest.mark.parametrize("sig,reason", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_a_signal_mid_run_leaves_valid_outputs(tmp_path: Path, sig: int, reason: str) -> None:
    child = start_loop(tmp_path)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert child.returncode == -signal.SIGTERM, err
    else:
        assert "KeyboardInterrupt" in err
    summary, native = outputs(tmp_path)
    assert summary["end_reason"] == reason
    assert native.summary["end_reason"] == reason
    work = stage_of(native, "work")
    assert work["calls"] > 10
    # The native file and summary.json tell the same story.
    assert [s["calls"] for s in summary["stages"]] == [s["calls"] for s in native.stages]  # type: ignore[index]
    assert summary["frames"]["count"] == native.frames["count"]  # type: ignore[index]
    # The stage the signal interrupted is marked, not lost.
    assert work["unwound"] + work["unfinished"] <= 1


def test_an_exception_that_ends_the_program_leaves_outputs(tmp_path: Path) -> None:
    done = run_python(
        f"""
        import stageprof
        stageprof.init(out_dir={str(tmp_path)!r}, formats=["summary"])
        with stageprof.stage("doomed"):
            raise RuntimeError("boom")
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["end_reason"] == "exception"
    assert summary["stages"][0]["unwound"] == 1


def test_a_program_that_never_finishes_is_finished_at_exit(tmp_path: Path) -> None:
    done = run_python(
        f"""
        import stageprof
        stageprof.init(out_dir={str(tmp_path)!r}, formats=["summary"])
        for _ in range(3):
            with stageprof.stage("step"):
                pass
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["end_reason"] == "exit"
    assert summary["stages"][0]["calls"] == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_records_into_a_file_of_its_own(tmp_path: Path) -> None:
    done = run_python(
        f"""
        import os, multiprocessing as mp, stageprof
        session = stageprof.init(out_dir={str(tmp_path)!r}, formats=["native", "summary"])

        def child_work():
            for _ in range(5):
                with stageprof.stage("child"):
                    pass

        with stageprof.stage("parent"):
            ctx = mp.get_context("fork")
            workers = [ctx.Process(target=child_work) for _ in range(2)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
                assert w.exitcode == 0
        pid = os.fork()
        if pid == 0:
            with stageprof.stage("forked"):
                pass
            raise SystemExit(0)
        os.waitpid(pid, 0)
        session.finish()
        print(" ".join(str(w.pid) for w in workers), pid)
        """,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    pids = done.stdout.split()
    parent = stageprof.read(tmp_path / "profile.stgp")
    assert [tuple(s["path"]) for s in parent.stages] == [("parent",)]
    assert stage_of(parent, "parent")["calls"] == 1
    for pid in pids[:2]:
        child = stageprof.read(tmp_path / f"child-{pid}" / "profile.stgp")
        assert stage_of(child, "child")["calls"] == 5
        assert child.summary["pid"] == int(pid)
    forked = stageprof.read(tmp_path / f"child-{pids[2]}" / "profile.stgp")
    assert stage_of(forked, "forked")["calls"] == 1
    assert json.loads((tmp_path / "summary.json").read_text())["pid"] != int(pids[2])
