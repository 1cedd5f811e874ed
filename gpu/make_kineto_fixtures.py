"""Make PyTorch profiler (Kineto) traces with ground truth, on a real GPU.

Two pipelines, each run twice with the same inputs:
  - profiled (torch.profiler, CPU+CUDA activities, profile_memory, record_shapes),
    exported as a Kineto trace;
  - unprofiled, with every stage measured independently: CUDA events around
    the stage on the current stream, and the caching allocator's peak
    (torch.cuda.max_memory_allocated, reset at stage start, with nesting
    handled) minus the allocated bytes at stage start.
  The profiled run also records the allocator's peak per stage (host-side
  bookkeeping that adds no GPU work), so memory can be checked against the
  very run the trace shows.

  inference: a multi-view-stereo-like pipeline (undistort, features,
      depth_estimation > build_cost_volume / warp / extract_depth, fusion,
      surface), one ProfilerStep per frame.
  training: an MLP trained with forward / loss / backward / optimizer stages
      and a ProfilerStep schedule; backward kernels come from autograd's thread.

Writes to $OUT: inference.pt.trace.json.gz, training.pt.trace.json.gz,
ground_truth.json, torch_key_averages.txt.
Run: python3 gpu/make_kineto_fixtures.py   (on a machine with an NVIDIA GPU)
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import statistics
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Tuple

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function, schedule

DEV = "cuda"
OUT = os.environ.get("OUT", ".")
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.backends.cudnn.benchmark = False


class Stages:
    """`with stages("name"):` marks a stage: a record_function when profiling,
    CUDA events when measuring ground truth; the allocator's peak in both
    (in the profiled run, it is the same run the trace shows)."""

    def __init__(self, measure: bool, step: int = 0) -> None:
        self.measure = measure
        self.step = step
        self.open: List[List[Any]] = []  # [name, start_event, base_bytes, peak_so_far]
        self.calls: List[Tuple[str, Any, Any, int, int]] = []  # (path, start_event, end_event, peak_rel_bytes, net_bytes)
        self.peaks: List[Tuple[int, str, int]] = []  # profiled runs: (step, path, peak_rel_bytes)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.measure:
            with record_function(name), self.allocator_peak(name):
                yield
            return
        # Fold the running peak into the open stages before resetting it for this one.
        running = torch.cuda.max_memory_allocated()
        for o in self.open:
            o[3] = max(o[3], running)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        entry: List[Any] = [name, start, base, base]
        self.open.append(entry)
        try:
            yield
        finally:
            end.record()
            self.open.pop()
            peak = max(entry[3], torch.cuda.max_memory_allocated())
            for o in self.open:
                o[3] = max(o[3], peak)
            path = "/".join([o[0] for o in self.open] + [name])
            self.calls.append((path, start, end, peak - base, torch.cuda.memory_allocated() - base))

    @contextlib.contextmanager
    def allocator_peak(self, name: str) -> Iterator[None]:
        """The caching allocator's peak above the stage's start (host-side
        bookkeeping: no synchronization, no allocation)."""
        running = torch.cuda.max_memory_allocated()
        for o in self.open:
            o[3] = max(o[3], running)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        entry: List[Any] = [name, None, base, base]
        self.open.append(entry)
        try:
            yield
        finally:
            self.open.pop()
            peak = max(entry[3], torch.cuda.max_memory_allocated())
            for o in self.open:
                o[3] = max(o[3], peak)
            path = "/".join([o[0] for o in self.open] + [name])
            self.peaks.append((self.step, path, peak - base))

    def results(self) -> Dict[str, Dict[str, Any]]:
        torch.cuda.synchronize()
        per: Dict[str, Dict[str, List[float]]] = {}
        for path, s, e, peak, net in self.calls:
            d = per.setdefault(path, {"gpu_ms": [], "peak_bytes": [], "net_bytes": []})
            d["gpu_ms"].append(s.elapsed_time(e))
            d["peak_bytes"].append(peak)
            d["net_bytes"].append(net)
        out: Dict[str, Dict[str, Any]] = {}
        for path, d in per.items():
            out[path] = {
                "calls": len(d["gpu_ms"]),
                "gpu_ms_each": d["gpu_ms"],
                "gpu_ms_mean": statistics.fmean(d["gpu_ms"]),
                "gpu_ms_total": sum(d["gpu_ms"]),
                "peak_bytes_max": max(d["peak_bytes"]),
                "net_bytes_each": d["net_bytes"],
            }
        return out


# ---------------------------------------------------------------- inference

VIEWS, H, W, DEPTHS, BATCH = 6, 480, 640, 64, 16


def make_inference_inputs() -> Tuple[torch.Tensor, torch.nn.Module]:
    g = torch.Generator(device=DEV).manual_seed(1)
    images = torch.rand(VIEWS, 3, H, W, device=DEV, generator=g)
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1),
    ).to(DEV).eval()
    return images, features


def inference_frame(stages: Stages, images: torch.Tensor, features: torch.nn.Module, frame: int) -> float:
    with torch.no_grad():
        with stages("undistort"):
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, H, device=DEV), torch.linspace(-1, 1, W, device=DEV), indexing="ij")
            r2 = xs * xs + ys * ys
            k = 0.05 + 0.01 * frame
            grid = torch.stack([xs * (1 + k * r2), ys * (1 + k * r2)], -1).expand(VIEWS, H, W, 2)
            rect = F.grid_sample(images, grid, align_corners=True)
        with stages("features"):
            feats = features(rect)  # V x 64 x H x W
        with stages("depth_estimation"):
            ref, src = feats[:1], feats[1:]
            best_cost = torch.full((H, W), float("inf"), device=DEV)
            best_depth = torch.zeros((H, W), device=DEV)
            for b in range(0, DEPTHS, BATCH):
                with stages("build_cost_volume"):
                    with stages("warp"):
                        shifts = torch.arange(b, b + BATCH, device=DEV, dtype=torch.float32) * (2.0 / W)
                        gx = xs.unsqueeze(0) + shifts.view(-1, 1, 1)
                        grid = torch.stack([gx, ys.unsqueeze(0).expand_as(gx)], -1)  # B x H x W x 2
                        warped = torch.stack([F.grid_sample(s.unsqueeze(0).expand(BATCH, -1, -1, -1), grid, align_corners=True) for s in src])
                    cost = ((warped - ref.unsqueeze(0)) ** 2).mean(dim=(0, 2))  # B x H x W
                with stages("extract_depth"):
                    c, i = cost.min(0)
                    better = c < best_cost
                    best_cost = torch.where(better, c, best_cost)
                    best_depth = torch.where(better, (i + b).float(), best_depth)
        with stages("fusion"):
            stack = torch.stack([torch.roll(best_depth, s, dims=1) for s in range(-3, 4)])
            fused = stack.median(0).values
        with stages("surface"):
            pts = torch.stack([xs, ys, fused / DEPTHS], -1)
            dx = pts[:, 2:] - pts[:, :-2]
            dy = pts[2:, :] - pts[:-2, :]
            normals = torch.cross(dx[1:-1], dy[:, 1:-1], dim=-1)
            normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return float(normals.sum().item())


# ---------------------------------------------------------------- training

WIDTH, LAYERS, BATCH_TRAIN = 4096, 6, 8192


def make_training() -> Tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    layers = []
    for _ in range(LAYERS):
        layers += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.GELU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(WIDTH, 16)).to(DEV)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    host_x = torch.randn(BATCH_TRAIN, WIDTH).pin_memory()
    host_y = torch.randint(0, 16, (BATCH_TRAIN,)).pin_memory()
    return model, opt, host_x, host_y


def training_step(
    stages: Stages, model: torch.nn.Module, opt: torch.optim.Optimizer, host_x: torch.Tensor, host_y: torch.Tensor
) -> torch.Tensor:
    with stages("data"):
        x = host_x.to(DEV, non_blocking=True)
        y = host_y.to(DEV, non_blocking=True)
    with stages("forward"):
        logits = model(x)
    with stages("loss"):
        loss = F.cross_entropy(logits, y)
    with stages("backward"):
        loss.backward()
    with stages("optimizer"):
        opt.step()
        opt.zero_grad(set_to_none=True)
    return loss


# ---------------------------------------------------------------- runs

RunFrame = Callable[[Stages, int], object]


def ground_truth(run_frame: RunFrame, frames: int, warmup: int) -> Dict[str, Dict[str, Any]]:
    for i in range(warmup):
        run_frame(Stages(measure=False), i)
    torch.cuda.synchronize()
    stages = Stages(measure=True)
    for i in range(frames):
        with stages("step"):
            run_frame(stages, warmup + i)
    return stages.results()


def profiled(
    run_frame: RunFrame, name: str, wait: int, warmup: int, active: int
) -> Tuple[str, Dict[str, Dict[str, Any]], Dict[str, int]]:
    """Runs the profiled steps; returns torch's table, its per-stage totals,
    and the allocator's per-stage peaks in the steps the trace holds."""
    tmp = tempfile.mkdtemp()
    peaks: Dict[str, int] = {}
    sched = schedule(wait=wait, warmup=warmup, active=active, repeat=1)
    handler = torch.profiler.tensorboard_trace_handler(tmp, use_gzip=True)
    with profile(
        activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
        schedule=sched,
        on_trace_ready=handler,
        record_shapes=True,
        profile_memory=True,
    ) as prof:
        for i in range(wait + warmup + active):
            stages = Stages(measure=False, step=i)
            run_frame(stages, i)
            prof.step()
            if i >= wait + warmup:
                for _, path, peak in stages.peaks:
                    peaks[path] = max(peaks.get(path, 0), peak)
    torch.cuda.synchronize()
    files = [f for f in os.listdir(tmp) if f.endswith(".json.gz")]
    assert len(files) == 1, files
    shutil.copy(os.path.join(tmp, files[0]), os.path.join(OUT, f"{name}.pt.trace.json.gz"))
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
    torch_totals = {e.key: {"count": e.count, "device_time_total_us": e.device_time_total, "cpu_time_total_us": e.cpu_time_total}
                    for e in prof.key_averages() if e.key in STAGE_NAMES}
    return table, torch_totals, peaks


STAGE_NAMES = {"undistort", "features", "depth_estimation", "build_cost_volume", "warp", "extract_depth", "fusion",
               "surface", "data", "forward", "loss", "backward", "optimizer"}


def main() -> None:
    props = torch.cuda.get_device_properties(0)
    images, features = make_inference_inputs()
    model, opt, host_x, host_y = make_training()
    def infer(stages: Stages, i: int) -> float:
        return inference_frame(stages, images, features, i)

    def train(stages: Stages, i: int) -> torch.Tensor:
        return training_step(stages, model, opt, host_x, host_y)

    truth: Dict[str, Any] = {
        "device": props.name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "inference": {"frames": 3, "stages": ground_truth(infer, frames=3, warmup=2)},
        "training": {"frames": 3, "stages": ground_truth(train, frames=3, warmup=2)},
    }
    # Profiled runs after the ground truth: same warm state, same inputs.
    infer_table, infer_torch, infer_peaks = profiled(infer, "inference", wait=1, warmup=1, active=3)
    train_table, train_torch, train_peaks = profiled(train, "training", wait=1, warmup=1, active=3)
    truth["inference"]["torch_key_averages"] = infer_torch
    truth["training"]["torch_key_averages"] = train_torch
    # The allocator's own peak per stage in the profiled run itself (the run the trace shows).
    truth["inference"]["profiled_peak_bytes_max"] = infer_peaks
    truth["training"]["profiled_peak_bytes_max"] = train_peaks
    with open(os.path.join(OUT, "ground_truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    with open(os.path.join(OUT, "torch_key_averages.txt"), "w") as f:
        f.write("== inference ==\n" + infer_table + "\n== training ==\n" + train_table + "\n")
    for run in ("inference", "training"):
        print(f"== {run} ground truth (CUDA events, mean per call) ==")
        for path, d in sorted(truth[run]["stages"].items()):
            print(f"{path:45s} calls {d['calls']:3d}  gpu {d['gpu_ms_mean']:9.3f} ms  peak {d['peak_bytes_max'] / 2**20:9.1f} MiB")
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()
