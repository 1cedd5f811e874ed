"""CUPTI handed over: a stageprof session with kernel tracing, finished,
then torch.profiler in the same process; both must see the kernels.

    python gpu/cupti_handover.py
"""

import json
import tempfile

import torch

import stageprof

a = torch.randn(1024, 1024, device="cuda")
out = tempfile.mkdtemp()
session = stageprof.init(out_dir=out, formats=["summary"], gpu="kernels")
for _ in range(5):
    with stageprof.stage("mm"):
        a @ a
torch.cuda.synchronize()
ours = {s["name"]: s["gpu_kernels"] for s in session.finish().stages}
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        a @ a
    torch.cuda.synchronize()
prof.export_chrome_trace(f"{out}/t.json")
kernels = sum(1 for e in json.load(open(f"{out}/t.json"))["traceEvents"] if e.get("cat") == "kernel")
print(f"stageprof kernels in mm: {ours.get('mm')}; torch.profiler kernels afterwards: {kernels}")
