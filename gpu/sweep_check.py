"""stageprof.sweep on a GPU: the demo's depth-batch sweep, and a callable
that runs out of GPU memory past some size (a result, not a crash).

    python gpu/sweep_check.py
"""

import torch

import stageprof
from stageprof import demo

demo.main(["--device", "cuda", "--frames", "3", "--out", "/tmp/sweep-demo", "--sweep", "depth-batch=1,2,4,8,16"])


def grab(batch: int) -> None:
    # batch x 32 GiB: the H200's 141 GB fit 4, not 8.
    x = torch.empty(batch * (32 << 30), dtype=torch.uint8, device="cuda")
    x.fill_(1)


print(stageprof.sweep(grab, [1, 2, 4, 8, 16], repeats=2, out_dir="/tmp/sweep-oom"))
print("allocated after:", torch.cuda.memory_allocated())
