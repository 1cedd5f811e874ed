//! Joining the GPU records of a native profile to the calls that launched them.
//!
//! The recorder tags every stage and frame that runs while CUDA profiling is
//! on with a GPU instance number; CUDA event times and CUPTI activities name
//! that number. They resolve only once the GPU has done the work, so they
//! reach the file after the call's end: the native reader collects them in a
//! first pass ([`GpuLedger`]), and the nester joins them to each call as it
//! closes. A call's figures include its nested calls', as for trace readers.
//!
//! Work launched from a thread with no stage open carries no instance, only
//! its launch time: like the trace readers, the join gives it to the
//! innermost call open at that time on the thread that owns the frames.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::wire::{flag, Record, TickScale};
use crate::{Catalog, FrameGpu, GpuActivity, GpuMetrics, MemDelta, MemoryLevel, MemoryPool, PathId, ProfileSink};

use super::gpu_work::{frame_gpu, merge_runs, summarize, Activity, BusyRun, FrameWindows, IdleContext};
use super::memory_series::{MemorySample, MemorySeries};

/// GPU records of a profile, by the instance that launched them.
#[derive(Default)]
pub struct GpuLedger {
    activities: Vec<Activity>,
    launch_ns: Vec<Option<i64>>,
    own: HashMap<u64, Vec<u32>>,
    /// Activities launched outside every stage, with a known launch time: `(launch_ns, activity)`.
    orphans: BTreeSet<(i64, u32)>,
    event_ns: HashMap<u64, u64>,
    /// Instances that ended on another stream than they began on.
    stream_changed: HashSet<u64>,
    frames_by_thread: HashMap<u32, u64>,
    /// The GPU allocator's levels, from its own trace.
    memory: Vec<MemorySample>,
    /// When that trace was on: `(start, end)` in ns; an open start waits in `trace_opened`.
    traced: Vec<(i64, i64)>,
    trace_opened: Option<i64>,
}

impl GpuLedger {
    /// Takes what the join needs from a record `thread` wrote; timestamps in ticks become ns.
    pub fn add(&mut self, record: &Record, thread: u32, scale: TickScale) {
        match *record {
            Record::Begin { frame: true, .. } => *self.frames_by_thread.entry(thread).or_default() += 1,
            Record::GpuTime { instance, elapsed_ns, stream_changed, .. } => {
                self.event_ns.insert(instance, elapsed_ns);
                if stream_changed {
                    self.stream_changed.insert(instance);
                }
            }
            Record::GpuMemory { device, ticks, allocated_bytes, reserved_bytes, edge } => {
                let ts = scale.ns(ticks).min(i64::MAX as u64) as i64;
                if edge == flag::TRACE_START {
                    self.trace_opened.get_or_insert(ts);
                } else if edge == flag::TRACE_END {
                    match (self.trace_opened.take(), self.traced.last_mut()) {
                        (Some(start), _) => self.traced.push((start, ts)),
                        // An end with no start since the last: the trace went on through it.
                        (None, Some(last)) => last.1 = last.1.max(ts),
                        (None, None) => {}
                    }
                }
                // A level, not a change: the series adds the devices' levels up itself, and
                // a change's bytes count only for host memory's allocation sums.
                self.memory.push(MemorySample {
                    ts,
                    device: i64::from(device),
                    total: allocated_bytes,
                    bytes: 0,
                    reserved: Some(reserved_bytes.min(i64::MAX as u64) as i64),
                });
            }
            Record::GpuActivity(r) => {
                let ns = |t| scale.ns(t).min(i64::MAX as u64) as i64;
                let index = self.activities.len() as u32;
                let launch = r.launch_ticks.map(ns);
                match launch {
                    Some(at) if r.instance == 0 => {
                        self.orphans.insert((at, index));
                    }
                    _ => self.own.entry(r.instance).or_default().push(index),
                }
                self.launch_ns.push(launch);
                self.activities.push(Activity {
                    correlation: r.instance as i64,
                    device: r.device,
                    stream: r.stream,
                    work: r.work,
                    name: r.name,
                    start: ns(r.start_ticks),
                    end: ns(r.end_ticks),
                    bytes: r.bytes,
                    shape: r.shape,
                });
            }
            _ => {}
        }
    }

    /// Whether no GPU results were recorded.
    pub fn is_empty(&self) -> bool {
        self.activities.is_empty() && self.event_ns.is_empty() && self.memory.is_empty()
    }
}

/// The ledger, consumed call by call as calls close.
pub struct GpuJoin {
    ledger: GpuLedger,
    idle: IdleContext,
    /// The thread that owns the frames (the most of them), which orphans are given to.
    frame_thread: Option<u32>,
    windows: FrameWindows,
    scratch: Vec<BusyRun>,
    memory: MemorySeries,
    /// When the allocator's trace was on, merged, in time order.
    traced: Vec<BusyRun>,
    /// Calls that ended on another stream than they began on: how many, and the first's stage.
    stream_changed: Option<(u64, Option<PathId>)>,
    /// Whether GPU work was traced (not only timed by events): then a call
    /// under GPU profiling that launched nothing is known to have launched nothing.
    work_traced: bool,
}

/// What a closing call gets of the GPU records.
pub struct ClosedGpu {
    /// The call's GPU figures, where its work was traced.
    pub figures: Option<GpuMetrics>,
    /// Time between its CUDA events.
    pub event_ns: Option<u64>,
    /// For a frame: its GPU window.
    pub frame: Option<FrameGpu>,
    /// What it did to the GPU allocator's level, where the allocator's trace was recorded.
    pub memory: Option<MemDelta>,
    /// The most the GPU allocator held from the driver meanwhile.
    pub reserved_bytes: Option<u64>,
    /// The activities its parent inherits.
    pub inherited: Vec<u32>,
}

/// What a closing call carries of GPU work: its own instance, and the
/// activities of its nested calls, handed up as they close.
#[derive(Default)]
pub struct CallGpu {
    /// The call's instance number in the GPU ledger.
    pub instance: Option<u64>,
    /// Indexes of the calls nested in it.
    pub nested: Vec<u32>,
}

/// Where and when a closing call ran.
#[derive(Clone, Copy, Debug)]
pub struct CallExtent {
    /// The thread that made the call.
    pub thread: u32,
    /// Whether the call is a frame.
    pub frame: bool,
    /// Start, since the profile's start.
    pub start_ns: u64,
    /// End, since the profile's start.
    pub end_ns: u64,
}

impl GpuJoin {
    /// A join over the GPU results of `ledger`.
    pub fn new(mut ledger: GpuLedger) -> GpuJoin {
        // Host blocking intervals are not recorded: idle gaps the host caused count as "host".
        let idle = IdleContext::new(std::mem::take(&mut ledger.launch_ns), &[]);
        let frame_thread =
            ledger.frames_by_thread.iter().max_by_key(|&(&t, &n)| (n, std::cmp::Reverse(t))).map(|(&t, _)| t);
        let windows = FrameWindows::new(&ledger.activities, &idle);
        let memory = MemorySeries::build(std::mem::take(&mut ledger.memory));
        let mut traced: Vec<BusyRun> =
            std::mem::take(&mut ledger.traced).into_iter().map(|(s, e)| BusyRun::window(s, e)).collect();
        merge_runs(&mut traced);
        let work_traced = !ledger.activities.is_empty();
        GpuJoin {
            ledger,
            idle,
            frame_thread,
            windows,
            scratch: Vec::new(),
            memory,
            traced,
            stream_changed: None,
            work_traced,
        }
    }

    /// Whether the allocator's trace was on for all of `start..=end`.
    fn memory_traced(&self, start: i64, end: i64) -> bool {
        let at = self.traced.partition_point(|w| w.start <= start);
        at > 0 && self.traced[at - 1].end >= end
    }

    /// Hands the GPU allocator's levels to `sink` (before any span, as
    /// [`ProfileSink::memory_level`] asks).
    pub fn emit_memory_levels(&self, sink: &mut dyn ProfileSink) {
        for (ts, bytes) in self.memory.levels() {
            let at = ts.max(0) as u64;
            sink.memory_level(&MemoryLevel { pool: MemoryPool::Gpu, start_ns: at, end_ns: at, bytes });
        }
    }

    /// The figures of a closing call launched from `path` (`None`: a frame);
    /// its own activities go to `sink`. Frames close in the order they
    /// started (they do not overlap), as their windows need.
    pub fn close(
        &mut self,
        call: CallGpu,
        extent: CallExtent,
        path: Option<PathId>,
        catalog: &Catalog,
        sink: &mut dyn ProfileSink,
    ) -> ClosedGpu {
        let mut own = call.instance.and_then(|i| self.ledger.own.remove(&i)).unwrap_or_default();
        if self.frame_thread == Some(extent.thread) {
            self.claim_orphans(extent, &mut own);
        }
        let event_ns = call.instance.and_then(|i| self.ledger.event_ns.remove(&i));
        if call.instance.is_some_and(|i| self.ledger.stream_changed.remove(&i)) {
            let (count, _) = self.stream_changed.get_or_insert((0, path));
            *count += 1;
        }
        for &a in &own {
            sink.gpu_activity(&self.activity(a, path), catalog);
        }
        let mut all = call.nested;
        all.extend_from_slice(&own);
        let frame = extent.frame.then(|| self.frame_window(extent, &all)).flatten();
        let (start, end) = (extent.start_ns.min(i64::MAX as u64) as i64, extent.end_ns.min(i64::MAX as u64) as i64);
        let traced = self.memory_traced(start, end);
        let memory = traced.then(|| self.memory.delta(start, end)).flatten();
        let reserved_bytes = traced.then(|| self.memory.reserved_peak(start, end)).flatten();
        if all.is_empty() {
            let figures = (self.work_traced && call.instance.is_some()).then(GpuMetrics::default);
            return ClosedGpu { figures, event_ns, frame, memory, reserved_bytes, inherited: all };
        }
        let activities = &self.ledger.activities;
        let mut m = summarize(&all, activities, &self.idle, &mut self.scratch);
        m.self_busy_ns = summarize(&own, activities, &self.idle, &mut self.scratch).busy_ns;
        let frame = frame.map(|f| FrameGpu { busy_own_ns: m.busy_ns, ..f });
        ClosedGpu { figures: Some(m), event_ns, frame, memory, reserved_bytes, inherited: all }
    }

    /// A closing frame's GPU window (its own work's busy time is filled in by the caller).
    fn frame_window(&mut self, extent: CallExtent, all: &[u32]) -> Option<FrameGpu> {
        let ns = |t: u64| t.min(i64::MAX as u64) as i64;
        let (start, end) = (ns(extent.start_ns), ns(extent.end_ns));
        let window = self.windows.frame(start, end, all, &self.ledger.activities, &self.idle)?;
        Some(frame_gpu(&window, 0, |t| t.max(0) as u64))
    }

    /// Orphans launched while the call was open; calls close innermost
    /// first, so each goes to the innermost call open at its launch.
    fn claim_orphans(&mut self, extent: CallExtent, own: &mut Vec<u32>) {
        let (from, to) = (extent.start_ns.min(i64::MAX as u64) as i64, extent.end_ns.min(i64::MAX as u64) as i64);
        let claimed: Vec<(i64, u32)> = self.ledger.orphans.range((from, 0)..=(to, u32::MAX)).copied().collect();
        for key in claimed {
            self.ledger.orphans.remove(&key);
            own.push(key.1);
        }
    }

    /// Calls that ended on another stream than they began on: how many, and
    /// the stage of the first (`None`: a frame).
    pub fn stream_changed(&self) -> Option<(u64, Option<PathId>)> {
        self.stream_changed
    }

    /// Activities no closed call claimed (launched outside every stage, or
    /// by a call whose records were lost) go to `sink` with no stage.
    pub fn finish(&mut self, catalog: &Catalog, sink: &mut dyn ProfileSink) -> usize {
        let mut left: Vec<u32> = self.ledger.own.drain().flat_map(|(_, v)| v).collect();
        left.extend(std::mem::take(&mut self.ledger.orphans).into_iter().map(|(_, a)| a));
        for &a in &left {
            sink.gpu_activity(&self.activity(a, None), catalog);
        }
        left.len()
    }

    fn activity(&self, i: u32, path: Option<PathId>) -> GpuActivity {
        let a = &self.ledger.activities[i as usize];
        GpuActivity {
            path,
            name: a.name,
            work: a.work,
            device: a.device,
            stream: a.stream,
            start_ns: a.start.max(0) as u64,
            end_ns: a.end.max(a.start).max(0) as u64,
            bytes: a.bytes,
            shape: a.shape,
        }
    }
}
