"""What reading torch's caching-allocator trace costs, on the Python demo's
frames on the GPU: events a frame, torch.cuda.memory._snapshot()'s time an
event, stageprof's reading of it an event, and the same with free_completed
left out of the trace.

    python gpu/allocator_trace_cost.py
"""

import argparse
import time
from collections import Counter

import torch

import stageprof
from stageprof import demo
args = argparse.Namespace(views=4, width=320, height=240, depth_planes=48)
cams = demo.rig(args.views, args.width, args.height)
dev = torch.device("cuda")
demo.run_frame(cams, 0, 48, 8, dev); torch.cuda.synchronize()
m = torch.cuda.memory
m._record_memory_history(enabled="all", context=None, stacks="python", max_entries=1<<20, clear_history=True)
t = time.perf_counter()
for f in range(5):
    demo.run_frame(cams, f, 48, 8, dev)
torch.cuda.synchronize()
print("5 frames with history", (time.perf_counter() - t) / 5 * 1e3, "ms/frame")
t = time.perf_counter(); s = m._snapshot(); dt = time.perf_counter() - t
n = sum(len(x) for x in s["device_traces"])
print("entries", n, "per frame", n / 5, "snapshot s", dt, "us/entry", dt / n * 1e6, Counter(e["action"] for e in s["device_traces"][0]))
print("segments", len(s["segments"]), "blocks", sum(len(x["blocks"]) for x in s["segments"]), "keys", sorted(s["device_traces"][0][0].keys()))
m._record_memory_history(enabled=None)
sess = stageprof.init(out_dir="/tmp/probe", formats=["native"], gpu="events", gpu_memory=False)
t = time.perf_counter(); sess._native.read_allocator_trace(s, 0, time.time_ns(), False); dt = time.perf_counter() - t
print("read_allocator_trace s", dt, "us/entry", dt / n * 1e6)
sess.finish()
m._record_memory_history(enabled="all", context=None, stacks="python", max_entries=1<<20, clear_history=True, skip_actions=["free_completed"])
for f in range(5):
    demo.run_frame(cams, f, 48, 8, dev)
t = time.perf_counter(); s = m._snapshot(); dt = time.perf_counter() - t
n = sum(len(x) for x in s["device_traces"])
print("skip free_completed: entries", n, "snapshot s", dt)
for frames in (5,):
    t = time.perf_counter()
    for f in range(frames):
        demo.run_frame(cams, f, 48, 8, dev)
    torch.cuda.synchronize()
    print("no history", (time.perf_counter() - t) / frames * 1e3, "ms/frame")
