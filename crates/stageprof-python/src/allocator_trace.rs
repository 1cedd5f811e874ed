//! Torch's caching-allocator trace, turned into GPU memory levels.
//!
//! While a session records GPU work from PyTorch, the Python side turns the
//! allocator's own trace on (`torch.cuda.memory._record_memory_history`,
//! without stack capture: one ring-buffer entry per event) for some frames,
//! and hands each snapshot of it here with the window it covered. Each event
//! becomes the allocator's levels right after it: bytes allocated (what
//! `torch.cuda.memory_allocated` says) and bytes reserved from the driver
//! (`memory_reserved`); the window's edges become levels marked as such, so
//! that the report gives GPU memory figures to the calls inside a window and
//! to no other. Stages cost no call into torch.
//!
//! The trace records the bytes each allocation asked for; torch's counters
//! (`memory_allocated`, `max_memory_allocated`) count the block it got,
//! rounded up and, for large blocks, sometimes not split at all. So the
//! allocator's blocks are replayed here ([`BlockLayout`]) from the segments
//! of a snapshot taken as the trace is turned on, through the window's
//! events, and each event moves the levels by its block's size.
//!
//! Absolute levels come from the snapshot's segments, which the allocator
//! reports under the same lock as the trace: the level at a window's start
//! is the segments' total less everything the window's events did. So a
//! level is right even where events fell between two windows that follow on
//! (the trace is emptied after a snapshot, not atomically with it), or where
//! a block was replayed at the wrong size (allocator settings such as
//! `expandable_segments` change its rules). Either shows as a start level
//! that differs from what was known there (the last window's end, or the
//! blocks as the trace was turned on); the bytes are counted and said.

use std::collections::{BTreeMap, BTreeSet};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use stageprof::foreign::{GpuMemoryLevel, TraceEdge};

use crate::edge_tags::Edges;

/// One trace event as the levels need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AllocatorEvent {
    /// Wall-clock time, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// Change of the allocated bytes.
    pub allocated: i64,
    /// Change of the reserved bytes.
    pub reserved: i64,
    /// The recorder's ticks it lies between, from the stage edge it carries ([`crate::edge_tags`]).
    pub between_ticks: Option<(u64, u64)>,
}

/// A segment of the allocator: its address, and its blocks' `(size, allocated)` in address order.
pub(crate) type SegmentBlocks = (u64, Vec<(u64, bool)>);

/// The caching allocator's smallest block, and the largest request served from its small pool.
const MIN_BLOCK: u64 = 512;
const SMALL_SIZE: u64 = 1 << 20;

/// The caching allocator's blocks on each device, as far as the snapshots
/// and the trace tell them: enough to know the size of the block each
/// allocation got (torch's `round_size` and `should_split`, default settings).
#[derive(Default)]
pub(crate) struct BlockLayout {
    /// By device and address.
    blocks: BTreeMap<(u32, u64), Block>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    size: u64,
    allocated: bool,
    /// Address of its segment (blocks merge only within one).
    segment: u64,
}

/// What a request of `bytes` is rounded up to.
fn rounded(bytes: u64) -> u64 {
    bytes.max(1).div_ceil(MIN_BLOCK) * MIN_BLOCK
}

impl BlockLayout {
    /// Takes `device`'s blocks from a snapshot's segments.
    pub(crate) fn reset(&mut self, device: u32, segments: &[SegmentBlocks]) {
        self.blocks.retain(|&(d, _), _| d != device);
        for (segment, blocks) in segments {
            let mut at = *segment;
            for &(size, allocated) in blocks {
                self.blocks.insert((device, at), Block { size, allocated, segment: *segment });
                at += size;
            }
        }
    }

    /// The change of the levels `(allocated, reserved)` that trace action
    /// `action` of `bytes` at `address` makes; `None` for actions that change
    /// neither (`free_completed`, `snapshot`, `oom`).
    pub(crate) fn apply(&mut self, device: u32, action: &str, address: u64, bytes: u64) -> Option<(i64, i64)> {
        let moved = |b: u64| b.min(i64::MAX as u64) as i64;
        Some(match action {
            "alloc" => (moved(self.alloc(device, address, bytes)), 0),
            // Allocated bytes drop when the program frees the block, not when
            // the allocator can reuse it (free_completed), as torch's counters do.
            "free_requested" => (-moved(self.free(device, address, bytes)), 0),
            "segment_alloc" | "segment_map" => {
                let block = Block { size: bytes, allocated: false, segment: address };
                self.blocks.insert((device, address), block);
                (0, moved(bytes))
            }
            "segment_free" | "segment_unmap" => {
                let end = address.saturating_add(bytes);
                let inside: Vec<_> = self.blocks.range((device, address)..(device, end)).map(|(k, _)| *k).collect();
                for key in inside {
                    self.blocks.remove(&key);
                }
                (0, -moved(bytes))
            }
            _ => return None,
        })
    }

    /// The block an allocation of `bytes` at `address` got: the free block
    /// there, split where the allocator splits; rounded bytes where the
    /// block is not known.
    fn alloc(&mut self, device: u32, address: u64, bytes: u64) -> u64 {
        let size = rounded(bytes);
        let Some(free) = self.blocks.get(&(device, address)).copied().filter(|b| !b.allocated && b.size >= size) else {
            self.blocks.insert((device, address), Block { size, allocated: true, segment: address });
            return size;
        };
        let remaining = free.size - size;
        let split = if size <= SMALL_SIZE { remaining >= MIN_BLOCK } else { remaining > SMALL_SIZE };
        let got = if split { size } else { free.size };
        if split {
            let rest = Block { size: remaining, allocated: false, segment: free.segment };
            self.blocks.insert((device, address + size), rest);
        }
        self.blocks.insert((device, address), Block { size: got, allocated: true, ..free });
        got
    }

    /// The block freed at `address` (rounded `bytes` where it is not known),
    /// merged with free neighbours of its segment.
    fn free(&mut self, device: u32, address: u64, bytes: u64) -> u64 {
        let Some(mut block) = self.blocks.get(&(device, address)).copied().filter(|b| b.allocated) else {
            return rounded(bytes);
        };
        let size = block.size;
        block.allocated = false;
        let mut start = address;
        let next = (device, address + block.size);
        if let Some(n) = self.blocks.get(&next).copied().filter(|n| !n.allocated && n.segment == block.segment) {
            self.blocks.remove(&next);
            block.size += n.size;
        }
        let before = self.blocks.range(..(device, address)).next_back().map(|(k, b)| (*k, *b));
        if let Some((key, p)) = before {
            let touches = key.0 == device && key.1 + p.size == address;
            if touches && !p.allocated && p.segment == block.segment {
                self.blocks.remove(&(device, address));
                start = key.1;
                block.size += p.size;
            }
        }
        self.blocks.insert((device, start), block);
        size
    }
}

/// A device's levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Levels {
    pub allocated: i64,
    pub reserved: i64,
}

/// The time a trace window covered, in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Whether it follows on from the previous window (the trace was not turned off between).
    pub continues: bool,
}

/// What the reads so far knew of each device.
#[derive(Default)]
pub(crate) struct AllocatorTrace {
    /// The allocator's blocks, replayed.
    layout: BlockLayout,
    /// Each device's levels where the next window starts, where known: the
    /// last window's end, or the blocks' totals as the trace was turned on.
    known: BTreeMap<u32, Levels>,
    /// Allocated bytes the trace's events do not explain: events between
    /// windows that follow on, or blocks replayed at the wrong size.
    pub unexplained_bytes: u64,
    /// Devices whose `known` levels were taken from the blocks as the trace was turned on.
    fresh: BTreeSet<u32>,
}

impl AllocatorTrace {
    /// One device's levels over `window`: at its start, after each of
    /// `events` (in order), and at its end, where they are `now`.
    pub(crate) fn levels(
        &mut self,
        device: u32,
        window: Window,
        events: &[AllocatorEvent],
        now: Levels,
    ) -> Vec<GpuMemoryLevel> {
        let moved = events.iter().fold(Levels::default(), |sum, e| Levels {
            allocated: sum.allocated + e.allocated,
            reserved: sum.reserved + e.reserved,
        });
        let mut level = Levels { allocated: now.allocated - moved.allocated, reserved: now.reserved - moved.reserved };
        // At a window that does not follow on, levels are known only from the blocks taken as it began.
        let compare = self.fresh.remove(&device) || window.continues;
        if let Some(known) = self.known.insert(device, now).filter(|_| compare) {
            self.unexplained_bytes += known.allocated.abs_diff(level.allocated);
        }
        let at = |unix_ns: u64, level: Levels, edge, between_ticks| GpuMemoryLevel {
            unix_ns,
            allocated_bytes: level.allocated,
            reserved_bytes: level.reserved.max(0) as u64,
            edge,
            between_ticks,
        };
        let mut out = Vec::with_capacity(events.len() + 2);
        // A window that follows on has no start of its own: the trace went on through the last read.
        let start = if window.continues { TraceEdge::Event } else { TraceEdge::Start };
        out.push(at(window.start_ns, level, start, None));
        for e in events {
            level.allocated += e.allocated;
            level.reserved += e.reserved;
            // Microsecond times: an event lies somewhere in its microsecond.
            let ns = (e.time_us.max(0) as u64).saturating_mul(1000).saturating_add(500);
            out.push(at(ns.clamp(window.start_ns, window.end_ns), level, TraceEdge::Event, e.between_ticks));
        }
        out.push(at(window.end_ns, now, TraceEdge::End, None));
        out
    }

    /// Takes the allocator's blocks from a snapshot taken as the trace is turned on.
    pub(crate) fn take_layout(&mut self, snapshot: &Bound<'_, PyDict>) -> PyResult<()> {
        let segments = Segments::of(snapshot)?;
        for (device, layout) in segments.layouts {
            self.layout.reset(device, &layout);
        }
        self.fresh = segments.now.keys().copied().collect();
        self.known = segments.now;
        Ok(())
    }

    /// Records the levels of one snapshot (`torch.cuda.memory._snapshot()`)
    /// of the trace over `window`.
    pub(crate) fn read(&mut self, snapshot: &Bound<'_, PyDict>, window: Window) -> PyResult<()> {
        let py = snapshot.py();
        let segments = Segments::of(snapshot)?;
        let edges = Edges::now();
        let mut events: BTreeMap<u32, Vec<AllocatorEvent>> = BTreeMap::new();
        for (device, trace) in list(snapshot, "device_traces")?.iter().enumerate() {
            let device = device as u32;
            let device_events = events.entry(device).or_default();
            for entry in trace.cast_into::<PyList>()? {
                let entry = entry.cast_into::<PyDict>()?;
                let action: String = field(&entry, pyo3::intern!(py, "action"))?;
                let address: u64 = field(&entry, pyo3::intern!(py, "addr"))?;
                let bytes: u64 = field(&entry, pyo3::intern!(py, "size"))?;
                if let Some((allocated, reserved)) = self.layout.apply(device, &action, address, bytes) {
                    let time_us = field(&entry, pyo3::intern!(py, "time_us"))?;
                    let tag = entry.get_item(pyo3::intern!(py, "user_metadata"))?;
                    let tag = tag.as_ref().and_then(|t| t.cast::<PyString>().ok()).map(|t| t.to_cow()).transpose()?;
                    let between_ticks = tag.and_then(|t| edges.between(&t));
                    device_events.push(AllocatorEvent { time_us, allocated, reserved, between_ticks });
                }
            }
        }
        let devices: BTreeSet<u32> = segments.now.keys().chain(events.keys()).copied().collect();
        for device in devices {
            let device_events = events.get(&device).map_or(&[][..], Vec::as_slice);
            let now = segments.now.get(&device).copied().unwrap_or_default();
            let levels = self.levels(device, window, device_events, now);
            stageprof::foreign::gpu_memory(device, &levels);
        }
        edges.read_done();
        // The snapshot's blocks are the allocator's own word: the replay goes on from them.
        for (device, layout) in segments.layouts {
            self.layout.reset(device, &layout);
        }
        Ok(())
    }
}

/// What a snapshot's segments say, per device.
struct Segments {
    /// The levels now.
    now: BTreeMap<u32, Levels>,
    /// The blocks.
    layouts: BTreeMap<u32, Vec<SegmentBlocks>>,
}

impl Segments {
    fn of(snapshot: &Bound<'_, PyDict>) -> PyResult<Segments> {
        let py = snapshot.py();
        let mut out = Segments { now: BTreeMap::new(), layouts: BTreeMap::new() };
        for segment in list(snapshot, "segments")? {
            let segment = segment.cast_into::<PyDict>()?;
            let device = field(&segment, pyo3::intern!(py, "device"))?;
            let levels = out.now.entry(device).or_default();
            levels.allocated += field::<i64>(&segment, pyo3::intern!(py, "allocated_size"))?;
            levels.reserved += field::<i64>(&segment, pyo3::intern!(py, "total_size"))?;
            let Some(address) = segment.get_item(pyo3::intern!(py, "address"))? else { continue };
            let mut blocks = Vec::new();
            for block in list(&segment, "blocks")? {
                let block = block.cast_into::<PyDict>()?;
                let state: String = field(&block, pyo3::intern!(py, "state"))?;
                blocks.push((field(&block, pyo3::intern!(py, "size"))?, state == "active_allocated"));
            }
            out.layouts.entry(device).or_default().push((address.extract()?, blocks));
        }
        Ok(out)
    }
}

fn list<'py>(dict: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyList>> {
    Ok(dict.get_item(key)?.map(|v| v.cast_into::<PyList>()).transpose()?.unwrap_or_else(|| PyList::empty(dict.py())))
}

fn field<'py, T: for<'a> FromPyObject<'a, 'py, Error = PyErr>>(
    dict: &Bound<'py, PyDict>,
    key: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<T> {
    match dict.get_item(key)? {
        Some(v) => v.extract(),
        None => Err(pyo3::exceptions::PyKeyError::new_err(format!("allocator snapshot entry without {key:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn event(time_us: i64, allocated: i64, reserved: i64) -> AllocatorEvent {
        AllocatorEvent { time_us, allocated, reserved, between_ticks: None }
    }

    fn window(start_us: u64, end_us: u64, continues: bool) -> Window {
        Window { start_ns: start_us * 1000, end_ns: end_us * 1000, continues }
    }

    fn summary(levels: &[GpuMemoryLevel]) -> Vec<(u64, i64, u64, TraceEdge)> {
        levels.iter().map(|l| (l.unix_ns, l.allocated_bytes, l.reserved_bytes, l.edge)).collect()
    }

    #[test]
    fn levels_run_from_the_window_start_to_what_the_segments_say() {
        let mut trace = AllocatorTrace::default();
        let events = [event(10, 0, 2 << 20), event(11, 512, 0), event(12, 1024, 0), event(13, -512, 0)];
        let now = Levels { allocated: 4096 + 1024, reserved: (2 << 20) + 8192 };
        let r = (2 << 20) + 8192;
        assert_eq!(
            summary(&trace.levels(0, window(9, 20, false), &events, now)),
            [
                (9_000, 4096, 8192, TraceEdge::Start),
                (10_500, 4096, r, TraceEdge::Event),
                (11_500, 4096 + 512, r, TraceEdge::Event),
                (12_500, 4096 + 1536, r, TraceEdge::Event),
                (13_500, 4096 + 1024, r, TraceEdge::Event),
                (20_000, 4096 + 1024, r, TraceEdge::End),
            ]
        );
        assert_eq!(trace.unexplained_bytes, 0);
    }

    #[test]
    fn events_between_windows_that_follow_on_are_counted_not_carried() {
        let mut trace = AllocatorTrace::default();
        trace.levels(0, window(0, 3, false), &[event(1, 100, 0)], Levels { allocated: 100, reserved: 1000 });
        // 300 bytes were allocated between the windows, in events no snapshot held.
        let next = Levels { allocated: 450, reserved: 1000 };
        let levels = trace.levels(0, window(3, 6, true), &[event(5, 50, 0)], next);
        assert_eq!((levels[0].allocated_bytes, levels[0].edge), (400, TraceEdge::Event));
        assert_eq!(trace.unexplained_bytes, 300);
        // While the trace was off, changes are nobody's loss.
        trace.levels(0, window(9, 10, false), &[], Levels { allocated: 0, reserved: 0 });
        assert_eq!(trace.unexplained_bytes, 300);
        // Blocks taken as the trace was turned on, 2048 bytes allocated; the window's
        // events explain a start of 1024 (a block replayed 1024 bytes short, say).
        trace.known.insert(0, Levels { allocated: 2048, reserved: 4096 });
        trace.fresh.insert(0);
        trace.levels(0, window(20, 30, false), &[event(25, 1024, 0)], Levels { allocated: 2048, reserved: 4096 });
        assert_eq!(trace.unexplained_bytes, 300 + 1024);
    }

    #[test]
    fn allocations_move_the_levels_by_the_block_they_got() {
        let mut layout = BlockLayout::default();
        let large = 0x7f00_0000_0000;
        // A fresh 20 MiB segment; 19.5 MiB asked for: the 0.5 MiB left is too small to split off.
        assert_eq!(layout.apply(0, "segment_alloc", large, 20 * MIB), Some((0, 20 * MIB as i64)));
        assert_eq!(layout.apply(0, "alloc", large, 39 * MIB / 2), Some((20 * MIB as i64, 0)));
        assert_eq!(layout.apply(0, "free_requested", large, 39 * MIB / 2), Some((-(20 * MIB as i64), 0)));
        assert_eq!(layout.apply(0, "free_completed", large, 39 * MIB / 2), None);
        // 8 MiB from the same (merged, free) block: 12 MiB are left, so it is split.
        assert_eq!(layout.apply(0, "alloc", large, 8 * MIB), Some((8 * MIB as i64, 0)));
        assert_eq!(layout.apply(0, "alloc", large + 8 * MIB, 11 * MIB + 1), Some((12 * MIB as i64, 0)));
        // Small requests round up to 512 bytes.
        assert_eq!(layout.apply(0, "alloc", 0x1000, 1000), Some((1024, 0)));
        assert_eq!(layout.apply(0, "free_requested", 0x1000, 1000), Some((-1024, 0)));
        // Blocks a snapshot reported: one allocated block of 3 MiB asked as 2.5 MiB.
        layout.reset(1, &[(0x9000, vec![(3 * MIB, true), (MIB, false)])]);
        assert_eq!(layout.apply(1, "free_requested", 0x9000, 5 * MIB / 2), Some((-(3 * MIB as i64), 0)));
        assert_eq!(
            layout.apply(1, "alloc", 0x9000, 4 * MIB),
            Some((4 * MIB as i64, 0)),
            "merged with its free neighbour"
        );
        assert_eq!(layout.apply(1, "segment_free", 0x9000, 4 * MIB), Some((0, -(4 * MIB as i64))));
        assert_eq!(
            layout.apply(1, "free_requested", 0x9000, 4 * MIB),
            Some((-(4 * MIB as i64), 0)),
            "unknown: rounded"
        );
    }
}
