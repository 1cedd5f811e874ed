"""Seeds for the `read_records` fuzz target from real native profiles: each
profile's record chunks, thread by thread, as the target's input (its
words, with the target's NEXT_THREAD word between threads; the target
writes the file around them). A collector pass goes in as the target's
PASS word and the pass's tick, after the records of the thread read last
before it.

Without a GPU no profile holds kernels, so one seed is written by hand:
a frame and a stage with GPU instances, their GPU times, a kernel (with its
launch and shape) and a copy inside a kernel-tracing window (docs/format.md
and crates/stageprof-model/src/wire.rs give each record's words).

Usage: python scripts/fuzz_seeds.py OUT_DIR PROFILE.stgp...
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

MAGIC = b"STGPROF\0"
CHUNK_RECORDS = 4
CHUNK_PASS = 6
NEXT_THREAD = b"NEXTTHRD"
PASS = b"PASSTICK"


def records_by_thread(profile: bytes) -> dict[int, bytes]:
    """Each thread's record words, its chunks joined in file order (docs/format.md's layout),
    with each pass after the thread read last before it."""
    if profile[:8] != MAGIC:
        raise ValueError("not a native stageprof profile")
    threads: dict[int, bytes] = {}
    thread = 0
    offset = 16
    while offset + 8 <= len(profile):
        kind, length = struct.unpack_from("<II", profile, offset)
        payload = profile[offset + 8 : offset + 8 + length]
        words = None
        if kind == CHUNK_RECORDS:
            (thread,) = struct.unpack_from("<I", payload)
            # The payload: the thread's index and a reserved u32, then its words.
            words = payload[8:]
        elif kind == CHUNK_PASS:
            # The payload: the tick the pass began.
            words = PASS + payload[:8]
        if words is not None:
            threads[thread] = threads.get(thread, b"") + words
        offset += 8 + length
    return threads


def header(kind: int, flags: int, name: int) -> int:
    return kind | flags | name << 32


def gpu_seed() -> bytes:
    begin_stage, begin_frame, end, gpu_link, gpu_time, gpu_activity, kernel_trace = 1, 2, 3, 6, 7, 8, 13
    sampled, launched, shape, copy, trace_start, trace_end = 1 << 7, 1 << 14, 1 << 15, 1 << 10, 1 << 4, 1 << 5
    frame, load = 0, 2  # the target's names
    ms = 1_000_000  # the target's clock counts nanoseconds
    launcher = [
        header(kernel_trace, trace_start, 0), 1 * ms,
        header(begin_frame, sampled, frame), 2 * ms, header(gpu_link, 0, 0), 1,
        header(begin_stage, 0, load), 3 * ms, header(gpu_link, 0, 0), 2,
        header(end, 0, 0), 9 * ms,
        header(end, 0, 0), 10 * ms,
        header(kernel_trace, trace_end, 0), 11 * ms,
    ]  # fmt: skip
    collector = [
        header(gpu_time, 0, 0), 1, 7 * ms,
        header(gpu_time, 0, 0), 2, 5 * ms,
        # A kernel of stage instance 2 on device 0, stream 7: launched at 4 ms, grid (64,1,1), block (256,1,1).
        header(gpu_activity, launched | shape, load), 2, 5 * ms, 8 * ms, 7, 0, 4 * ms, 64 | 1 << 32 | 1 << 48, 256 | 1 << 16 | 1 << 32,
        # A host-to-device copy (direction 1) of 4 MiB.
        header(gpu_activity, copy | 1 << 12, load), 2, 8 * ms, 9 * ms, 7, 4 << 20,
    ]  # fmt: skip
    return NEXT_THREAD.join(b"".join(w.to_bytes(8, "little") for w in words) for words in (launcher, collector))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "by-hand-gpu").write_bytes(gpu_seed())
    for name in sys.argv[2:]:
        threads = records_by_thread(Path(name).read_bytes())
        seed = NEXT_THREAD.join(words for _, words in sorted(threads.items()))
        target = out / (Path(name).parent.name + "-" + Path(name).stem)
        target.write_bytes(seed)
        print(f"{target}: {len(threads)} threads, {len(seed) // 8} words")


if __name__ == "__main__":
    main()
