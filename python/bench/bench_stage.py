"""What a stage costs from Python, side by side with what people use today,
in one process: each contender runs ``loops`` stages (enter + exit) per
round, rounds interleaved, and the median round is reported per stage.

    python python/bench/bench_stage.py [--loops 200000] [--rounds 7] [--trace T.json --cli target/release/stageprof]

With ``--trace``, ``stageprof.read()`` of that file is timed against the
``stageprof report`` command on it, interleaved the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List

import stageprof


class PerfCounterStage:
    """A pure-Python context manager that reads the clock at enter and exit."""

    __slots__ = ("start", "total")

    def __init__(self) -> None:
        self.start = 0
        self.total = 0

    def __enter__(self) -> None:
        self.start = time.perf_counter_ns()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter_ns() - self.start


class NoOp:
    """A context manager that does nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def with_loop(make: Callable[[], Any], loops: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(loops):
            with make():
                pass

    return run


def call_loop(fn: Callable[[], Any], loops: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(loops):
            fn()

    return run


def plain_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    timer = PerfCounterStage()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timer:
            return fn(*args, **kwargs)

    return wrapper


def median_ns(run: Callable[[], None], loops: int, rounds: int, rows: Dict[str, List[float]], name: str) -> None:
    start = time.perf_counter_ns()
    run()
    rows.setdefault(name, []).append((time.perf_counter_ns() - start) / loops)


@contextlib.contextmanager
def session(enabled: bool) -> Iterator[None]:
    out = tempfile.mkdtemp(prefix="stageprof-bench-")
    s = stageprof.init(out_dir=out, formats=["native"], enabled=enabled)
    try:
        yield
    finally:
        s.finish()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--trace")
    parser.add_argument("--cli", default="target/release/stageprof")
    args = parser.parse_args()
    loops, rounds = args.loops, args.rounds

    def nothing() -> None:
        return None

    contenders: Dict[str, Callable[[], None]] = {
        "empty loop": call_loop(lambda: None, loops),
        "no-op context manager": with_loop(NoOp, loops),
        "pure-Python context manager, perf_counter_ns twice": with_loop(PerfCounterStage, loops),
        "stageprof.stage(name)": with_loop(lambda: stageprof.stage("bench"), loops),
        "plain wrapper (perf_counter_ns twice)": call_loop(plain_wrapper(nothing), loops),
        "@stageprof.profile": call_loop(stageprof.profile("bench_fn")(nothing), loops),
    }
    try:
        import torch

        contenders["torch.profiler.record_function, no profiler"] = with_loop(
            lambda: torch.profiler.record_function("bench"), loops // 10
        )
        if torch.cuda.is_available():

            def nvtx() -> None:
                torch.cuda.nvtx.range_push("bench")
                torch.cuda.nvtx.range_pop()

            contenders["torch.cuda.nvtx push + pop"] = call_loop(nvtx, loops)
    except ImportError:
        pass

    rows: Dict[str, List[float]] = {}
    for enabled in (True, False):
        with session(enabled):
            state = "on" if enabled else "off"
            for _ in range(rounds):
                for name, run in contenders.items():
                    n = loops // 10 if "record_function" in name else loops
                    if name.startswith(("stageprof", "@stageprof")):
                        median_ns(run, n, rounds, rows, f"{name}, {state}")
                    elif enabled:
                        median_ns(run, n, rounds, rows, name)
    print(f"{loops} stages a round, {rounds} rounds interleaved; median ns per stage (enter + exit)")
    medians = {name: statistics.median(v) for name, v in rows.items()}
    baseline = {
        "stageprof.stage(name), on": "pure-Python context manager, perf_counter_ns twice",
        "stageprof.stage(name), off": "no-op context manager",
        "@stageprof.profile, on": "plain wrapper (perf_counter_ns twice)",
        "@stageprof.profile, off": "plain wrapper (perf_counter_ns twice)",
    }
    for name, ns in medians.items():
        against = baseline.get(name)
        ratio = f"  ({ns / medians[against]:.2f}x {against})" if against else ""
        print(f"{ns:9.1f} ns  {name}{ratio}")

    if args.trace:
        reads: Dict[str, List[float]] = {"stageprof.read()": [], "stageprof report (CLI)": []}
        for _ in range(rounds):
            start = time.perf_counter()
            stageprof.read(args.trace).summary
            reads["stageprof.read()"].append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([args.cli, "report", "--format", "json", args.trace], check=True, capture_output=True)
            reads["stageprof report (CLI)"].append(time.perf_counter() - start)
        r, c = (statistics.median(v) for v in reads.values())
        print(f"read of {args.trace}: stageprof.read() {r:.3f} s, CLI {c:.3f} s, ratio {r / c:.3f}")


if __name__ == "__main__":
    main()
