"""Shared helpers: each test that records runs its session in a fresh
interpreter (the session is global, as in a real program), or in this one
with a session finished at the end of the test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

import stageprof

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "stageprof-readers" / "tests" / "fixtures"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[stageprof.Session]:
    """A running global session writing native and summary files under tmp_path, finished after the test."""
    s = stageprof.init(out_dir=tmp_path / "out", formats=["native", "summary"])
    try:
        yield s
    finally:
        s.finish()


def run_python(code: str, cwd: Path, timeout: float = 60, **popen: object) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a new interpreter with this one's packages."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stage_of(report: stageprof.Report, path: str) -> dict[str, object]:
    """The stage at ``path`` (names joined by ``/``) of a report."""
    for s in report.stages:
        if "/".join(s["path"]) == path:
            return s
    raise AssertionError(f"no stage {path!r} in {[ '/'.join(s['path']) for s in report.stages ]}")
