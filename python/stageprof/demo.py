"""``python -m stageprof.demo``: the Rust demo's multi-view-stereo pipeline,
written with PyTorch and profiled by stageprof from Python.

A scene is made in code: an undulating textured surface of known shape,
seen by four calibrated cameras with barrel distortion. Each frame is
rendered, undistorted, matched sparsely and densely, swept over depth
planes in batches (``build_cost_volume`` warps each source view onto each
plane with ``grid_sample``: ``grid_sample_warp``; ``extract_depth`` keeps
the best plane), fused and reconstructed, every stage doing the real work
with torch on the CPU, or on a GPU when one is there. The fused depth is
then held against the known surface: the demo fails loudly if its median
error passes 2 mm or its 90th percentile 5 mm, so a broken stage cannot
hide behind a good-looking profile. ``--sweep depth-batch=1,2,4,8,16``
compares throughput (and GPU memory on a GPU) per batch size.

Needs torch (``pip install torch``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import stageprof

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - said in words below
    torch = None  # type: ignore[assignment]

BASELINE_MM = 100.0
PATCH = 7


@dataclass
class Camera:
    """A calibrated pinhole camera with two radial distortion terms, facing +z."""

    fx: float
    fy: float
    cx: float
    cy: float
    k1: float
    k2: float
    center: Tuple[float, float, float]
    width: int
    height: int


def rig(views: int, width: int, height: int) -> List[Camera]:
    """The reference camera and the others around it at the baseline."""
    f = 1.25 * width
    cams = []
    for i in range(views):
        if i == 0:
            center = (0.0, 0.0, 0.0)
        else:
            a = (i - 1) * 2 * math.pi / max(views - 1, 1)
            center = (BASELINE_MM * math.cos(a), BASELINE_MM * math.sin(a), 0.0)
        cams.append(Camera(f, f, (width - 1) / 2, (height - 1) / 2, -0.10, 0.02, center, width, height))
    return cams


@dataclass
class Surface:
    """z = base + a sin(kx + phase) cos(ky), in mm, with a texture that differs everywhere."""

    base_z: float
    amplitude: float
    wavelength: float
    phase: float

    @staticmethod
    def at_frame(frame: int) -> "Surface":
        return Surface(1000.0, 20.0, 150.0, frame * 0.35)

    def height(self, x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        k = 2 * math.pi / self.wavelength
        return self.base_z + self.amplitude * torch.sin(k * x + self.phase) * torch.cos(k * y)

    def texture(self, x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        waves = (
            0.16 * torch.sin(0.31 * x + 0.17 * y)
            + 0.12 * torch.sin(-0.23 * x + 0.41 * y + 1.3)
            + 0.08 * torch.sin(0.57 * x - 0.11 * y + 0.7)
        )
        return (0.5 + waves + 0.35 * (value_noise(x / 9.0, y / 9.0) - 0.5)).clamp(0.0, 1.0)


def value_noise(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Smoothly interpolated lattice noise in [0, 1] (a hash of the lattice point)."""
    ix, iy = torch.floor(x), torch.floor(y)
    fx, fy = x - ix, y - iy

    def h(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
        v = torch.sin(a * 127.1 + b * 311.7) * 43758.5453
        return v - torch.floor(v)

    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = h(ix, iy) * (1 - sx) + h(ix + 1, iy) * sx
    bottom = h(ix, iy + 1) * (1 - sx) + h(ix + 1, iy + 1) * sx
    return top * (1 - sy) + bottom * sy


def pixel_grid(cam: Camera, device: Any) -> Tuple["torch.Tensor", "torch.Tensor"]:
    v, u = torch.meshgrid(
        torch.arange(cam.height, device=device, dtype=torch.float32),
        torch.arange(cam.width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return u, v


def radial(cam: Camera, r2: "torch.Tensor") -> "torch.Tensor":
    return 1 + cam.k1 * r2 + cam.k2 * r2 * r2


def render(cam: Camera, surface: Surface, device: Any) -> "torch.Tensor":
    """What ``cam`` sees: each distorted pixel's ray cast onto the surface."""
    u, v = pixel_grid(cam, device)
    xd, yd = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    x, y = xd.clone(), yd.clone()
    for _ in range(20):
        f = radial(cam, x * x + y * y)
        x, y = xd / f, yd / f
    z = torch.full_like(x, surface.base_z)
    for _ in range(40):
        z = surface.height(cam.center[0] + x * (z - cam.center[2]), cam.center[1] + y * (z - cam.center[2]))
    t = z - cam.center[2]
    return surface.texture(cam.center[0] + x * t, cam.center[1] + y * t)


def sample(img: "torch.Tensor", px: "torch.Tensor", py: "torch.Tensor") -> "torch.Tensor":
    """Bilinear samples of ``img`` (H, W) at pixel coordinates; NaN outside."""
    h, w = img.shape[-2:]
    grid = torch.stack((2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1), dim=-1).reshape(-1, *px.shape[-2:], 2)
    flat = img.reshape(1, 1, h, w).expand(grid.shape[0], 1, h, w)
    out = F.grid_sample(flat, grid, mode="bilinear", align_corners=True).reshape(px.shape)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return torch.where(inside, out, torch.full_like(out, float("nan")))


@stageprof.profile("undistortion")
def undistortion(cams: Sequence[Camera], captured: Sequence["torch.Tensor"]) -> List["torch.Tensor"]:
    """Every view resampled onto its ideal pinhole grid."""
    out = []
    for cam, img in zip(cams, captured):
        with stageprof.stage("undistort_view"):
            u, v = pixel_grid(cam, img.device)
            xn, yn = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
            f = radial(cam, xn * xn + yn * yn)
            out.append(sample(img, cam.fx * xn * f + cam.cx, cam.fy * yn * f + cam.cy))
    return out


def shift(ref: Camera, cam: Camera, z: "torch.Tensor | float") -> Tuple[Any, Any]:
    """Where a reference pixel lands in ``cam`` if its point is at depth ``z``: a shift along the baseline."""
    return ref.fx * (ref.center[0] - cam.center[0]) / z, ref.fy * (ref.center[1] - cam.center[1]) / z


def triangulate(ref: Camera, cam: Camera, du: "torch.Tensor", dv: "torch.Tensor") -> "torch.Tensor":
    bx, by = ref.center[0] - cam.center[0], ref.center[1] - cam.center[1]
    along = du * bx + dv * by
    return torch.where(along > 0, ref.fx * (bx * bx + by * by) / along, torch.full_like(along, float("nan")))


def keypoints_and_descriptors(img: "torch.Tensor") -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Corners (local maxima of gradient energy, the strongest 400) and their normalized 7x7 patches."""
    gx = torch.zeros_like(img)
    gy = torch.zeros_like(img)
    gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
    gy[1:-1, :] = img[2:, :] - img[:-2, :]
    energy = torch.nan_to_num(gx * gx + gy * gy, nan=0.0)
    local_max = F.max_pool2d(energy[None, None], 5, stride=1, padding=2)[0, 0]
    h, w = img.shape
    border = torch.zeros_like(energy, dtype=torch.bool)
    border[8 : h - 8, 8 : w - 8] = True
    candidates = (energy == local_max) & (energy > 1e-3) & border
    ys, xs = torch.nonzero(candidates, as_tuple=True)
    order = torch.argsort(energy[ys, xs], descending=True)[:400]
    ys, xs = ys[order], xs[order]
    r = PATCH // 2
    patches = F.unfold(torch.nan_to_num(img)[None, None], PATCH, padding=r)[0].T.reshape(h, w, PATCH * PATCH)
    d = patches[ys, xs]
    d = d - d.mean(dim=1, keepdim=True)
    std = d.pow(2).mean(dim=1, keepdim=True).sqrt()
    keep = std[:, 0] > 1e-3
    return torch.stack((xs, ys), dim=1)[keep].float(), (d / std.clamp_min(1e-6))[keep]


@stageprof.profile("sparse_matching")
def sparse_matching(cams: Sequence[Camera], images: Sequence["torch.Tensor"]) -> Tuple[int, Tuple[float, float]]:
    """Mutual nearest neighbours between the reference and each view; their depths bound the sweep."""
    with stageprof.stage("keypoints_and_descriptors"):
        described = [keypoints_and_descriptors(img) for img in images]
    with stageprof.stage("mutual_nearest_neighbours"):
        depths = []
        ref_points, ref_desc = described[0]
        for s in range(1, len(images)):
            points, desc = described[s]
            if len(points) == 0 or len(ref_points) == 0:
                continue
            dist = torch.cdist(ref_desc, desc)
            forward = dist.argmin(dim=1)
            backward = dist.argmin(dim=0)
            mutual = backward[forward] == torch.arange(len(ref_points), device=dist.device)
            d = points[forward[mutual]] - ref_points[mutual]
            z = triangulate(cams[0], cams[s], d[:, 0], d[:, 1])
            depths.append(z[(z > 300) & (z < 5000)])
        all_depths = torch.cat(depths) if depths else torch.empty(0)
    stageprof.counter("sparse_matches", len(all_depths))
    return len(all_depths), robust_range(all_depths)


def robust_range(depths: "torch.Tensor") -> Tuple[float, float]:
    """Median and a spread from the median absolute deviation: a few wrong matches cannot stretch it."""
    if len(depths) == 0:
        return 500.0, 2000.0
    median = depths.median().item()
    mad = (depths - median).abs().median().item()
    spread = max(4.5 * 1.4826 * mad, 0.02 * median)
    return median - spread, median + spread


def inverse_depths(z_range: Tuple[float, float], steps: int, device: Any) -> "torch.Tensor":
    i = torch.arange(steps, device=device, dtype=torch.float32)
    return 1 / z_range[1] + (1 / z_range[0] - 1 / z_range[1]) * i / (steps - 1)


def warp_costs(
    cams: Sequence[Camera], images: Sequence["torch.Tensor"], s: int, inv: "torch.Tensor", window: int
) -> "torch.Tensor":
    """Per depth in ``1/inv``: view ``s`` warped onto that plane, its absolute difference
    with the reference, averaged over a window (NaN where the view does not reach)."""
    ref = images[0]
    u, v = pixel_grid(cams[0], ref.device)
    du, dv = shift(cams[0], cams[s], 1 / inv)
    with stageprof.stage("grid_sample_warp"):
        warped = sample(images[s], u[None] + du[:, None, None], v[None] + dv[:, None, None])
    diff = (warped - ref[None]).abs()
    valid = torch.isfinite(diff).float()
    sums = F.avg_pool2d(torch.nan_to_num(diff)[:, None], window, stride=1, padding=window // 2)[:, 0]
    counts = F.avg_pool2d(valid[:, None], window, stride=1, padding=window // 2)[:, 0]
    return torch.where(counts > 0, sums / counts.clamp_min(1e-6), torch.full_like(sums, float("inf")))


def refine(costs: "torch.Tensor", inv: "torch.Tensor") -> "torch.Tensor":
    """Depth per pixel from the best plane, refined by a parabola through its neighbours' costs."""
    best = costs.argmin(dim=0)
    n = costs.shape[0]
    c = costs.gather(0, best[None])[0]
    before = costs.gather(0, (best - 1).clamp(0, n - 1)[None])[0]
    after = costs.gather(0, (best + 1).clamp(0, n - 1)[None])[0]
    curvature = before + after - 2 * c
    usable = (best > 0) & (best < n - 1) & torch.isfinite(curvature) & (curvature > 0)
    offset = torch.where(usable, 0.5 * (before - after) / curvature.clamp_min(1e-12), torch.zeros_like(c))
    step = inv[1] - inv[0]
    depth = 1 / (inv[0] + (best.float() + offset) * step)
    return torch.where(torch.isfinite(c), depth, torch.full_like(depth, float("nan")))


@stageprof.profile("dense_matching")
def dense_matching(
    cams: Sequence[Camera], images: Sequence["torch.Tensor"], z_range: Tuple[float, float]
) -> List["torch.Tensor"]:
    """Each view against the reference over 32 inverse depths, 5x5 windows: a depth per pair."""
    inv = inverse_depths(z_range, 32, images[0].device)
    depths = []
    for s in range(1, len(images)):
        with stageprof.stage("match_pair"):
            depths.append(refine(warp_costs(cams, images, s, inv, 5), inv))
    return depths


@stageprof.profile("depth_estimation")
def depth_estimation(
    cams: Sequence[Camera], images: Sequence["torch.Tensor"], z_range: Tuple[float, float], planes: int, batch: int
) -> "torch.Tensor":
    """The plane sweep: cost of every plane, ``batch`` planes (their warped views) at a time."""
    inv = inverse_depths(z_range, planes, images[0].device)
    costs = []
    for start in range(0, planes, batch):
        with stageprof.stage("build_cost_volume"):
            part = inv[start : start + batch]
            views = [warp_costs(cams, images, s, part, 5) for s in range(1, len(images))]
            costs.append(torch.stack(views).mean(dim=0))
    with stageprof.stage("extract_depth"):
        return refine(torch.cat(costs), inv)


@stageprof.profile("fusion")
def fusion(sweep: "torch.Tensor", pairwise: Sequence["torch.Tensor"]) -> "torch.Tensor":
    """Of the sweep's and the pairs' depths, those within 1% of their median; their median, where two agree."""
    stack = torch.stack([sweep, *pairwise])
    median = stack.nanmedian(dim=0).values
    agree = (stack - median).abs() <= 0.01 * median
    kept = torch.where(agree, stack, torch.full_like(stack, float("nan")))
    fused = kept.nanmedian(dim=0).values
    return torch.where(agree.sum(dim=0) >= 2, fused, torch.full_like(fused, float("nan")))


@stageprof.profile("surface_reconstruction")
def surface_reconstruction(cam: Camera, depth: "torch.Tensor") -> int:
    """Points from the fused depth and normals from their neighbours: the points with a normal."""
    u, v = pixel_grid(cam, depth.device)
    points = torch.stack(((u - cam.cx) / cam.fx * depth, (v - cam.cy) / cam.fy * depth, depth), dim=-1)
    a = points[1:-1, 2:] - points[1:-1, :-2]
    b = points[2:, 1:-1] - points[:-2, 1:-1]
    normals = torch.linalg.cross(a, b)
    count = int((torch.isfinite(normals).all(dim=-1) & (normals.norm(dim=-1) > 0)).sum().item())
    stageprof.counter("surface_points", count)
    return count


def depth_error(cam: Camera, surface: Surface, depth: "torch.Tensor") -> Optional[Tuple[int, float, float]]:
    """Points, median and 90th percentile of |z - surface| away from the borders, in mm."""
    m = cam.width // 8
    u, v = pixel_grid(cam, depth.device)
    z = depth[m:-m, m:-m]
    x = (u[m:-m, m:-m] - cam.cx) / cam.fx * z
    y = (v[m:-m, m:-m] - cam.cy) / cam.fy * z
    err = (z - surface.height(x, y)).abs()
    err = err[torch.isfinite(err)].sort().values
    if len(err) == 0:
        return None

    def at(q: float) -> float:
        return float(err[min(max(math.ceil(q * len(err)), 1), len(err)) - 1].item())

    return len(err), at(0.5), at(0.9)


def run_frame(cams: Sequence[Camera], frame: int, planes: int, batch: int, device: Any) -> Optional[Tuple[int, float, float]]:
    surface = Surface.at_frame(frame)
    with stageprof.stage("capture"):
        captured = [render(c, surface, device) for c in cams]
    images = undistortion(cams, captured)
    _, z_range = sparse_matching(cams, images)
    pairwise = dense_matching(cams, images, z_range)
    sweep = depth_estimation(cams, images, z_range, planes, batch)
    fused = fusion(sweep, pairwise)
    surface_reconstruction(cams[0], fused)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return depth_error(cams[0], surface, fused)


def run(args: argparse.Namespace, device: Any) -> Tuple[stageprof.Report, float, List[Any]]:
    """``args.frames`` frames profiled into ``args.out``: the report, frames a
    second and each frame's depth error."""
    cams = rig(args.views, args.width, args.height)
    session = stageprof.init(out_dir=args.out)
    errors = []
    start = time.perf_counter()
    for frame in range(args.frames):
        with stageprof.frame():
            errors.append(run_frame(cams, frame, args.depth_planes, args.depth_batch, device))
    elapsed = time.perf_counter() - start
    return session.finish(), args.frames / elapsed, errors


def batch_sweep(args: argparse.Namespace, device: Any) -> Tuple[stageprof.SweepResult, List[Any]]:
    """The depth batch sizes of ``--sweep``, one frame a call, ``args.frames``
    calls a size (stageprof.sweep), and each frame's depth error."""
    cams = rig(args.views, args.width, args.height)
    errors: List[Any] = []
    frames = itertools.count()

    def one_frame(batch: int) -> None:
        errors.append(run_frame(cams, next(frames), args.depth_planes, batch, device))

    # A call is one frame, whatever the batch: throughput is frames a second.
    result = stageprof.sweep(one_frame, parse_sweep(args.sweep), repeats=args.frames, out_dir=args.out, items_per_call=1)
    # What the sweep itself holds on the GPU: its stage's peak, from stageprof's report.
    for point in result.points:
        peak = point.stage_gpu_peak_bytes.get("depth_estimation")
        if peak is not None:
            point.extra["depth_estimation GPU peak (MiB)"] = peak / 2**20
    return result, errors


def check(errors: List[Any]) -> bool:
    worst = max((e for e in errors if e is not None), key=lambda e: e[1], default=None)
    if worst is None or any(e is None for e in errors):
        print("reconstruction: no depth recovered: FAILED, a stage is broken")
        return False
    points, median, p90 = worst
    ok = bool(median <= 2.0 and p90 <= 5.0)
    print(
        f"reconstruction: depth error against the known surface, worst frame: median {median:.2f} mm, "
        f"90th percentile {p90:.2f} mm over {points} points (bound: 2 mm, 5 mm): {'ok' if ok else 'FAILED, a stage is broken'}"
    )
    return ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stageprof.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--depth-planes", type=int, default=48)
    parser.add_argument("--depth-batch", type=int, default=8)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", default="stageprof-out")
    parser.add_argument("--sweep", metavar="depth-batch=1,2,4,8,16", help="compare batch sizes")
    args = parser.parse_args(argv)
    if torch is None:
        print("the demo needs torch: pip install torch", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available to torch", file=sys.stderr)
        return 2
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    print(f"device: {torch.cuda.get_device_name(device) if use_cuda else 'cpu'} (torch {torch.__version__})")
    if args.sweep is None:
        # The session prints its table at finish.
        report, fps, errors = run(args, device)
        print(f"{fps:.2f} frames/s; outputs: {', '.join(report.files)}")
        return 0 if check(errors) else 1
    result, errors = batch_sweep(args, device)
    print(result)
    return 0 if check(errors) else 1


def parse_sweep(text: str) -> List[int]:
    key, _, values = text.partition("=")
    if key != "depth-batch" or not values:
        raise SystemExit(f"--sweep {text!r}: write it depth-batch=1,2,4,8,16")
    try:
        batches = [int(v) for v in values.split(",")]
    except ValueError:
        raise SystemExit(f"--sweep {text!r}: each depth batch is a whole number") from None
    if any(b < 1 for b in batches):
        raise SystemExit(f"--sweep {text!r}: each depth batch is 1 or more")
    return batches


if __name__ == "__main__":
    sys.exit(main())
