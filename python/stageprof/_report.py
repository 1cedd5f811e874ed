"""A profile's report: the summary as Python values, and every output format.

Everything here is read from the Rust core's summary.json (docs/summary-schema.md),
so a report from Python shows exactly what ``stageprof report`` shows.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, List, Union

from . import _native

if TYPE_CHECKING:
    import pandas

PathLike = Union[str, "os.PathLike[str]"]


class Report:
    """One profile's report, or several ranks' of one job.

    ``str(report)`` is the terminal table; ``summary`` is summary.json as a dict.
    """

    def __init__(self, native: _native.NativeReport) -> None:
        self._native = native
        self._summary: Dict[str, Any] | None = None

    @property
    def summary(self) -> Dict[str, Any]:
        """summary.json as a dict (for several ranks: ``ranks`` with each rank's summary)."""
        if self._summary is None:
            self._summary = json.loads(self._native.json())
        return self._summary

    def _single(self) -> Dict[str, Any]:
        s = self.summary
        if "stages" not in s:
            raise ValueError("this report holds several ranks: read their summaries from report.summary['ranks']")
        return s

    @property
    def stages(self) -> List[Dict[str, Any]]:
        """The stages, in tree order, as summary.json lists them."""
        stages: List[Dict[str, Any]] = self._single()["stages"]
        return stages

    @property
    def bottlenecks(self) -> List[Dict[str, Any]]:
        """The top stages by their own time, largest first."""
        ranked: List[Dict[str, Any]] = self._single()["bottlenecks"]
        return ranked

    @property
    def frames(self) -> Dict[str, Any]:
        """Frame statistics, with every frame listed under ``each``."""
        frames: Dict[str, Any] = self._single()["frames"]
        return frames

    @property
    def files(self) -> List[str]:
        """The files a finished session wrote (empty for a report of files read)."""
        return self._native.files

    @property
    def errors(self) -> List[str]:
        """Outputs of the session that could not be written, each naming its path."""
        return self._native.errors

    def table(self, color: bool = False, width: int | None = None, columns: str | None = None) -> str:
        """The terminal table, fitted to ``width`` (default: no limit) with
        the main columns; ``columns="wide"`` shows every measured one, and a
        list such as ``"calls,p95,cpu"`` (labels or summary.json keys) chooses.
        An unknown column is a ``ValueError`` that lists the known ones."""
        return self._native.table(color, width, columns)

    def __str__(self) -> str:
        return self._native.table()

    def __repr__(self) -> str:
        profiles = len(self._native)
        return f"<stageprof.Report of {profiles} profile{'s' if profiles != 1 else ''}>"

    def write_json(self, path: PathLike) -> None:
        """Writes summary.json (docs/summary-schema.md) to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._native.json())
            f.write("\n")

    def write_html(self, path: PathLike) -> None:
        """Writes the HTML report, one page that works offline."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._native.html())

    def write_chrome(self, path: PathLike) -> None:
        """Writes the Chrome trace (Perfetto UI, chrome://tracing) of the profile."""
        self._native.write_chrome(path)

    def to_pandas(self) -> Dict[str, "pandas.DataFrame"]:
        """DataFrames of ``stages``, ``frames`` (one row a frame) and ``kernels``
        (one row per stage and kernel); needs pandas."""
        try:
            import pandas
        except ImportError as e:
            raise ImportError("Report.to_pandas() needs pandas: pip install pandas") from e
        stages = [{k: v for k, v in s.items() if k not in ("top_kernels", "copies")} for s in self.stages]
        for s in stages:
            s["path"] = "/".join(s["path"])
        kernels = [
            {"stage": "/".join(s["path"]), **k} for s in self.stages for k in s["top_kernels"]
        ]
        frames = [{k: v for k, v in f.items() if k != "gpu_idle_ns"} for f in self.frames["each"]]
        return {
            "stages": pandas.DataFrame(stages),
            "frames": pandas.DataFrame(frames),
            "kernels": pandas.DataFrame(kernels, columns=["stage", "name", "grid", "block", "calls", "total_ns"]),
        }
