"""``python -m stageprof.demo``: the pipeline runs, its reconstruction
passes its check, and the profile names the seeds' stages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import run_python

torch = pytest.importorskip("torch")

SEED_STAGES = {
    ("undistortion",),
    ("sparse_matching",),
    ("dense_matching",),
    ("depth_estimation",),
    ("depth_estimation", "build_cost_volume"),
    ("depth_estimation", "build_cost_volume", "grid_sample_warp"),
    ("depth_estimation", "extract_depth"),
    ("fusion",),
    ("surface_reconstruction",),
}


def test_the_demo_reconstructs_the_surface_and_profiles_the_seeds_stages(tmp_path: Path) -> None:
    done = run_python(
        f"import sys, stageprof.demo; sys.exit(stageprof.demo.main(['--frames', '2', '--device', 'cpu', '--out', {str(tmp_path)!r}]))",
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reconstruction: depth error against the known surface" in done.stdout and ": ok" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    paths = {tuple(s["path"]) for s in summary["stages"]}
    assert SEED_STAGES <= paths, SEED_STAGES - paths
    calls = {tuple(s["path"]): s["calls"] for s in summary["stages"]}
    # 48 planes in batches of 8, two frames.
    assert calls[("depth_estimation", "build_cost_volume")] == 12
    assert summary["frames"]["count"] == 2
    assert (tmp_path / "report.html").exists() and (tmp_path / "trace.json").exists()


def test_the_batch_size_sweep(tmp_path: Path) -> None:
    done = run_python(
        "import sys, stageprof.demo; sys.exit(stageprof.demo.main("
        f"['--frames', '1', '--device', 'cpu', '--out', {str(tmp_path)!r}, '--sweep', 'depth-batch=4,16']))",
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fastest: batch size" in done.stdout
    for batch, calls in [(4, 12), (16, 3)]:
        summary = json.loads((tmp_path / f"batch-{batch}" / "summary.json").read_text())
        got = {tuple(s["path"]): s["calls"] for s in summary["stages"]}
        assert got[("depth_estimation", "build_cost_volume")] == calls
    bad = run_python(
        "import sys, stageprof.demo; sys.exit(stageprof.demo.main(['--sweep', 'depth-batch=0']))", cwd=tmp_path
    )
    assert bad.returncode != 0 and "each depth batch is 1 or more" in bad.stderr
