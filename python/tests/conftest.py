"""Shared helpers: each test that records runs its session in a fresh
interpreter (the session is global, as in a real program), or in this one
with a session finished at the end of the test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Iterator

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


@contextlib.contextmanager
def fake_torch_cuda(**attrs: Any) -> Iterator[types.ModuleType]:
    """A ``torch.cuda`` that says CUDA is initialized on device 0 (on a
    machine with no driver), with ``attrs`` added, in place of the real one
    while the block runs."""
    from stageprof import _torch

    fake = types.ModuleType("torch.cuda")
    fake.is_initialized = lambda: True  # type: ignore[attr-defined]
    fake.current_device = lambda: 0  # type: ignore[attr-defined]
    fake._lazy_init = lambda: None  # type: ignore[attr-defined]
    fake.set_stream = lambda stream: None  # type: ignore[attr-defined]
    for name, value in attrs.items():
        setattr(fake, name, value)
    saved = sys.modules.get("torch.cuda")
    sys.modules["torch.cuda"] = fake
    _torch._patched = False
    try:
        yield fake
    finally:
        if saved is None:
            del sys.modules["torch.cuda"]
        else:
            sys.modules["torch.cuda"] = saved
        _torch._patched = False


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
