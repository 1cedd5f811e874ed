"""Make PyTorch profiler traces of frames whose GPU work comes from more than
the frame thread's stages, with ground truth, on real GPUs.

  ddp_rank{0,1}: DistributedDataParallel over NCCL on two GPUs (one process
      a GPU); the all-reduce kernels run on NCCL's stream, launched from
      autograd's thread. Stages forward / backward / optimizer, 5 profiled
      steps.
  streams_graphs: one GPU; a stage `main` (one matmul), a stage `side`
      launching SIDE_KERNELS in-place adds on a side stream, a stage `graph`
      replaying a CUDA graph of GRAPH_KERNELS in-place multiplies
      GRAPH_REPLAYS times. Every kernel count is known by construction.

Ground truth (ground_truth_frames.json): for each profiled step, the GPU
time between CUDA events recorded on the current stream at the step's start
and end, in the very run the trace shows (the events add two tiny records
to the trace and no GPU work); the kernel counts by construction.

Writes to $OUT: ddp_rank0.pt.trace.json.gz, ddp_rank1.pt.trace.json.gz,
streams_graphs.pt.trace.json.gz, ground_truth_frames.json.
Run: OUT=dir python3 gpu/make_frame_traces.py   (on a machine with two NVIDIA GPUs)
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import spawn
from torch.profiler import ProfilerActivity, profile, record_function, schedule

OUT = os.environ.get("OUT", ".")
STEPS = 5
SIDE_KERNELS = 6
GRAPH_KERNELS = 8
GRAPH_REPLAYS = 3


def export(prof: profile, name: str) -> None:
    """The trace, gzipped, into OUT."""
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, name)
    prof.export_chrome_trace(path)
    with open(path, "rb") as src, gzip.open(os.path.join(OUT, name + ".gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.rmtree(tmp)


def profiled_steps(step: Callable[[], None], name: str) -> List[float]:
    """Runs `step` under the profiler (one warm-up step, STEPS active ones),
    with CUDA events around each active step; returns their GPU times (ms)."""
    events = []
    sched = schedule(wait=0, warmup=1, active=STEPS, repeat=1)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], schedule=sched) as prof:
        for i in range(STEPS + 1):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            if i > 0:
                events.append((start, end))
            prof.step()
    torch.cuda.synchronize()
    export(prof, name)
    return [s.elapsed_time(e) for s, e in events]


def ddp_worker(rank: int, world: int, results: Dict[int, List[float]]) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29517"
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(8)]).cuda()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank], bucket_cap_mb=16)
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-4)
    x = torch.randn(1024 * (rank + 1), 4096, device="cuda")  # rank 1 does twice the work: a straggler

    def step() -> None:
        with record_function("forward"):
            loss = ddp(x).square().mean()
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    results[rank] = profiled_steps(step, f"ddp_rank{rank}.pt.trace.json")
    dist.barrier()
    dist.destroy_process_group()


def streams_graphs() -> List[float]:
    torch.cuda.set_device(0)
    a = torch.randn(4096, 4096, device="cuda")
    b = torch.randn(4096, 4096, device="cuda")
    static = torch.randn(4096, 4096, device="cuda")
    side = torch.cuda.Stream()
    warm = torch.cuda.Stream()
    warm.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warm):
        for _ in range(3):
            static.mul_(1.0000001)
    torch.cuda.current_stream().wait_stream(warm)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(GRAPH_KERNELS):
            static.mul_(1.0000001)

    def step() -> None:
        with record_function("main"):
            torch.mm(a, b)
        with record_function("side"):
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(SIDE_KERNELS):
                    a.add_(1e-7)
            torch.cuda.current_stream().wait_stream(side)
        with record_function("graph"):
            for _ in range(GRAPH_REPLAYS):
                graph.replay()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    return profiled_steps(step, "streams_graphs.pt.trace.json")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    truth: Dict[str, Any] = {"steps": STEPS}
    truth["streams_graphs"] = {
        "step_gpu_ms": streams_graphs(),
        "kernels_per_step": {"side": SIDE_KERNELS, "graph": GRAPH_KERNELS * GRAPH_REPLAYS},
    }
    manager = mp.Manager()
    results = manager.dict()
    spawn(ddp_worker, args=(2, results), nprocs=2, join=True)
    for rank in range(2):
        truth[f"ddp_rank{rank}"] = {"step_gpu_ms": results[rank]}
    truth["made_with"] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())),
    }
    with open(os.path.join(OUT, "ground_truth_frames.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(json.dumps(truth, indent=1))
