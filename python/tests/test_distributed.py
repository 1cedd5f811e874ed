"""A torch.distributed job (gloo, on the CPU): each rank writes its own
profile under <out_dir>/rank-<rank>, says its rank, and the report of the
directory shows the ranks side by side with the slow one named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import stageprof
from conftest import REPO

pytest.importorskip("torch")

RANK = """
import os, sys, time, torch.distributed as dist, stageprof
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://{store}", rank=rank, world_size=2)
session = stageprof.init(out_dir={out!r}, formats=["summary", "native"])
for _ in range(5):
    with stageprof.frame():
        with stageprof.stage("step"):
            time.sleep(0.004 if rank == 1 else 0.001)  # rank 1 is the straggler
        dist.barrier()
session.finish()
dist.destroy_process_group()
"""


def test_each_rank_writes_its_own_profile_and_the_report_shows_them_side_by_side(tmp_path: Path) -> None:
    import sys

    code = RANK.format(store=tmp_path / "store", out=str(tmp_path / "out"))
    ranks = [
        subprocess.Popen([sys.executable, "-c", code, str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    for p in ranks:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for r in (0, 1):
        summary = json.loads((tmp_path / "out" / f"rank-{r}" / "summary.json").read_text())
        assert summary["stages"][0]["calls"] == 5
    report = stageprof.read([tmp_path / "out" / f"rank-{r}" / "profile.stgp" for r in (0, 1)])
    ranks_json = report.summary
    assert [r["rank"] for r in ranks_json["ranks"]] == [0, 1]
    step = next(row for row in ranks_json["side_by_side"] if row["path"] == ["step"])
    assert step["slowest_rank"] == 1
    cli = REPO / "target" / "release" / "stageprof"
    if cli.exists():
        out = subprocess.run([cli, "report", tmp_path / "out"], capture_output=True, text=True, check=True).stdout
        assert "== rank 0" in out and "== rank 1" in out
