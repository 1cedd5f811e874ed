"""What switching torch's allocator history costs and leaves behind, on the
Python demo's frames: which switch prints torch's "Requested callback is
not found" warning (each switch is announced on stderr before it is made;
the last ones go on in one thread and off in another, with torch's
annotation callback thread-local, its default, and global, as stageprof
asks: only the first should print it),
whether turning the history off keeps its entries for the next
``_snapshot()`` (which stageprof takes as the trace is turned back on), and
what that snapshot costs with and without them.

    python gpu/allocator_history_switch.py
"""

import argparse
import sys
import threading
import time
from typing import Any

import torch

from stageprof import demo

args = argparse.Namespace(views=4, width=320, height=240, depth_planes=48)
cams = demo.rig(args.views, args.width, args.height)
device = torch.device("cuda")
memory = torch.cuda.memory


def frame() -> None:
    demo.run_frame(cams, 0, args.depth_planes, 8, device)
    torch.cuda.synchronize()


def elsewhere(run: Any) -> None:
    """Runs ``run`` on a thread of its own, as stageprof's window thread switches history."""
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def switch(label: str, **how: Any) -> None:
    print(f"-- switch: {label}", file=sys.stderr, flush=True)
    memory._record_memory_history(context=None, stacks="python", max_entries=1 << 20, skip_actions=["free_completed"], **how)
    print(f"-- switched: {label}", file=sys.stderr, flush=True)


def snapshot(label: str) -> None:
    best, entries = float("inf"), 0
    for _ in range(5):
        began = time.perf_counter()
        taken = memory._snapshot()
        best = min(best, time.perf_counter() - began)
        entries = sum(len(trace) for trace in taken["device_traces"])
    blocks = sum(len(s["blocks"]) for s in taken["segments"])
    print(f"{label}: {entries} trace entries, {len(taken['segments'])} segments, {blocks} blocks, snapshot {best * 1e3:.3f} ms (best of 5)")


frame()
snapshot("never on")
switch("on, cleared", enabled="all", clear_history=True)
frame()
snapshot("on, a frame traced")
switch("on again while on, cleared", enabled="all", clear_history=True)
snapshot("after re-enabling, cleared")
frame()
switch("on again while on, not cleared", enabled="all")
switch("off", enabled=None)
snapshot("off, not cleared")
switch("off again", enabled=None)
switch("on, cleared", enabled="all", clear_history=True)
frame()
switch("off, cleared", enabled=None, clear_history=True)
snapshot("off, cleared")
for annotations in ("thread-local", "global"):
    g = annotations == "global"
    switch(f"on, callback {annotations}", enabled="all", clear_history=True, global_record_annotations=g)
    frame()
    elsewhere(lambda: switch(f"off on another thread, callback {annotations}", enabled=None, global_record_annotations=g))
