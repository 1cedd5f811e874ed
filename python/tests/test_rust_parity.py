"""A Python run and a Rust run of the same stage sequence give the same
summary, but for the times (crates/stageprof/examples/stage_sequence.rs is
the Rust side)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

import stageprof
from conftest import REPO

# Figures that do not depend on how long anything took.
TIMELESS_STAGE = ("name", "path", "depth", "calls", "threads", "unwound", "unfinished", "derived")
TIMELESS_COUNTER = ("name", "samples", "min", "max", "mean", "last")


def timeless(summary: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "stages": sorted(
            (tuple((k, tuple(s[k]) if k == "path" else s[k]) for k in TIMELESS_STAGE) for s in summary["stages"]),
        ),
        "frames": summary["frames"]["count"],
        "counters": sorted(
            tuple((k, c[k]) for k in TIMELESS_COUNTER) for c in summary["counters"] if c["name"] != "process RSS bytes"
        ),
        "threads": summary["threads"],
        "end_reason": summary["end_reason"],
        "dropped_events": summary["dropped_events"],
        "schema_version": summary["schema_version"],
    }


def python_run(out: Path) -> Dict[str, Any]:
    s = stageprof.init(out_dir=out, formats=["summary", "native"], memory=False)
    for frame in range(3):
        with stageprof.frame():
            with stageprof.stage("load"):
                for _ in range(2):
                    with stageprof.stage("decode"):
                        pass
            with stageprof.stage("step"):
                with stageprof.stage("forward"):
                    pass
            stageprof.counter("queue", frame * 2.0)
    with pytest.raises(RuntimeError):
        with stageprof.stage("failing"):
            raise RuntimeError("a stage left by an exception")
    s.finish()
    summary: Dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


@pytest.mark.skipif(shutil.which("cargo") is None, reason="needs cargo to build the Rust side")
def test_a_python_run_and_a_rust_run_of_one_sequence_agree(tmp_path: Path) -> None:
    subprocess.run(
        ["cargo", "run", "-q", "-p", "stageprof", "--example", "stage_sequence", "--", str(tmp_path / "rust")],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    rust = json.loads((tmp_path / "rust" / "summary.json").read_text())
    python = python_run(tmp_path / "python")
    assert timeless(python) == timeless(rust)
    # And the native files read back the same way.
    read = [stageprof.read(tmp_path / side / "profile.stgp").summary for side in ("rust", "python")]
    assert timeless(read[0])["stages"] == timeless(read[1])["stages"]
