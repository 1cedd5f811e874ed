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
//!
//! A recorder that sums a run up while recording (a bounded profile, or the
//! in-memory fallback) cannot read ahead: its join ([`GpuJoin::live`]) takes
//! GPU records as they come, and the nester holds each closed call back
//! until its results are in ([`GpuJoin::ready`]): its CUDA event time
//! (every instance linked as timed gets exactly one GPU_TIME), and the
//! allocator's levels up to its end (the allocator trace's marks say how far
//! they are written). GPU activities (kernels) are not joined live.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};

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
    /// Instances whose events could not be timed.
    untimed: HashSet<u64>,
    /// Instances that ended on another stream than they began on.
    stream_changed: HashSet<u64>,
    frames_by_thread: HashMap<u32, u64>,
    /// The GPU allocator's levels, from its own trace.
    memory: Vec<MemorySample>,
    /// When that trace was on.
    memory_windows: TraceWindows,
    /// When kernel tracing was on, where it ran in some frames only.
    kernel_windows: TraceWindows,
}

/// When a trace was on, from the records that turned it on and off (ns).
#[derive(Default)]
struct TraceWindows {
    closed: Vec<(i64, i64)>,
    opened: Option<i64>,
    /// Whether any record said the trace went on or off.
    seen: bool,
}

impl TraceWindows {
    fn on(&mut self, ts: i64) {
        self.seen = true;
        self.opened.get_or_insert(ts);
    }

    fn off(&mut self, ts: i64) {
        self.seen = true;
        match (self.opened.take(), self.closed.last_mut()) {
            (Some(start), _) => self.closed.push((start, ts)),
            // An off with no on since the last: the trace went on through that one.
            (None, Some(last)) => last.1 = last.1.max(ts),
            (None, None) => {}
        }
    }

    /// The closed windows; the latest also stays, as an off with no on
    /// since (a read that goes on through it) may still extend it.
    fn take_closed(&mut self) -> Vec<BusyRun> {
        let Some(&latest) = self.closed.last() else { return Vec::new() };
        let closed = self.closed.drain(..).map(|(s, e)| BusyRun::window(s, e)).collect();
        self.closed.push(latest);
        closed
    }

    /// The closed windows, merged; `open_to_end`: a window still open runs to the end of time.
    fn runs(&mut self, open_to_end: bool) -> Vec<BusyRun> {
        if open_to_end {
            if let Some(start) = self.opened.take() {
                self.closed.push((start, i64::MAX));
            }
        }
        let mut runs: Vec<BusyRun> =
            std::mem::take(&mut self.closed).into_iter().map(|(s, e)| BusyRun::window(s, e)).collect();
        merge_runs(&mut runs);
        runs
    }
}

/// Nanoseconds as the signed times the join works in (no real time reaches the bound).
fn signed(ns: u64) -> i64 {
    ns.min(i64::MAX as u64) as i64
}

/// Whether merged `runs` cover all of `start..=end`.
fn covered(runs: &[BusyRun], start: i64, end: i64) -> bool {
    let at = runs.partition_point(|w| w.start <= start);
    at > 0 && runs[at - 1].end >= end
}

impl GpuLedger {
    /// Takes what the join needs from a record `thread` wrote; timestamps in ticks become ns.
    pub fn add(&mut self, record: &Record, thread: u32, scale: TickScale) {
        match *record {
            Record::Begin { frame: true, .. } => *self.frames_by_thread.entry(thread).or_default() += 1,
            Record::GpuTime { instance, elapsed_ns, stream_changed, .. } => {
                match elapsed_ns {
                    Some(ns) => {
                        self.event_ns.insert(instance, ns);
                    }
                    None => {
                        self.untimed.insert(instance);
                    }
                }
                if stream_changed {
                    self.stream_changed.insert(instance);
                }
            }
            Record::GpuMemory { device, ticks, allocated_bytes, reserved_bytes, edge } => {
                let ts = signed(scale.ns(ticks));
                if edge == flag::TRACE_START {
                    self.memory_windows.on(ts);
                } else if edge == flag::TRACE_END {
                    self.memory_windows.off(ts);
                }
                // A level, not a change: the series adds the devices' levels up itself, and
                // a change's bytes count only for host memory's allocation sums.
                self.memory.push(MemorySample {
                    ts,
                    device: i64::from(device),
                    total: allocated_bytes,
                    bytes: 0,
                    reserved: Some(signed(reserved_bytes)),
                });
            }
            Record::KernelTrace { ticks, on } => {
                let ts = signed(scale.ns(ticks));
                if on {
                    self.kernel_windows.on(ts);
                } else {
                    self.kernel_windows.off(ts);
                }
            }
            Record::GpuActivity(r) => {
                let ns = |t| signed(scale.ns(t));
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
    memory_windows: Vec<BusyRun>,
    /// Calls that ended on another stream than they began on: how many, and the first's stage.
    stream_changed: Option<(u64, Option<PathId>)>,
    /// Whether GPU work was traced (not only timed by events): then a call
    /// under GPU profiling that launched nothing is known to have launched nothing.
    work_traced: bool,
    /// When kernel tracing was on, where it ran in some frames only
    /// (`None`: throughout): only calls wholly inside have GPU work figures.
    kernel_windows: Option<Vec<BusyRun>>,
    /// For a join made while recording: how far the allocator's trace is known.
    live: Option<LiveMemory>,
}

/// How far the allocator's trace is written, by its marks.
#[derive(Clone, Copy, Default)]
struct Mark {
    /// Every level up to here (ns) is written.
    through_ns: i64,
    /// The latest mark where the trace was off: no call spanning it is covered.
    gap_ns: Option<i64>,
    /// The trace is over: no level follows.
    done: bool,
}

/// What a join made while recording knows of the allocator's trace.
#[derive(Default)]
struct LiveMemory {
    /// Since when (ns) the recorder has had a producer of allocator levels.
    producer_since_ns: Option<u64>,
    /// The marks decoded so far; at the last advance; and in force (as at
    /// the advance before). A mark is put in force one advance late, so that
    /// levels another thread wrote before it are decoded by then.
    seen: Mark,
    at_last_advance: Mark,
    in_force: Mark,
    /// Levels decoded but past the mark in force, not yet in the series.
    incoming: Vec<MemorySample>,
    /// How many levels of the series the sink has been given.
    emitted: usize,
    /// Levels that came earlier than levels already in the series (left out).
    out_of_order: u64,
    /// The gap up to which levels were last forgotten.
    forgotten_to: Option<i64>,
    /// Levels kept after they were last forgotten.
    kept_after_forget: usize,
}

/// Levels a live join keeps before it looks for ones to forget without a gap in the trace.
const MIN_LEVELS_KEPT: usize = 4096;

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
    /// Whether a GPU time will name the instance.
    pub timed: bool,
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
        let memory_windows = ledger.memory_windows.runs(false);
        let kernel_windows = ledger.kernel_windows.seen.then(|| ledger.kernel_windows.runs(true));
        let work_traced = !ledger.activities.is_empty();
        GpuJoin {
            live: None,
            ledger,
            idle,
            frame_thread,
            windows,
            scratch: Vec::new(),
            memory,
            memory_windows,
            stream_changed: None,
            work_traced,
            kernel_windows,
        }
    }

    /// A join that takes GPU records as they are recorded (see the module's docs).
    pub fn live() -> GpuJoin {
        GpuJoin { live: Some(LiveMemory::default()), ..GpuJoin::new(GpuLedger::default()) }
    }

    /// Whether closed calls wait for their GPU results ([`GpuJoin::ready`]).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Takes a GPU record of a live join; `false` for one it does not join (GPU activities).
    pub fn take(&mut self, record: &Record, thread: u32, scale: TickScale) -> bool {
        match *record {
            Record::GpuActivity(_) => return false,
            // Kernels are not joined live, so neither are the windows they were traced in.
            Record::KernelTrace { .. } => {}
            Record::GpuMemoryMark { ticks, trace_off, done } => {
                if let Some(live) = &mut self.live {
                    let at = signed(scale.ns(ticks));
                    let seen = &mut live.seen;
                    seen.through_ns = seen.through_ns.max(at);
                    seen.done |= done;
                    if trace_off {
                        seen.gap_ns = Some(seen.gap_ns.map_or(at, |g| g.max(at)));
                    }
                }
            }
            _ => self.ledger.add(record, thread, scale),
        }
        true
    }

    /// Brings a live join's memory up to the marks decoded by the advance
    /// before this one, handing the levels up to them to `sink`.
    /// `producer_since_ns`: since when the recorder has had a producer of
    /// allocator levels (calls that end after it wait for its marks).
    pub fn advance(&mut self, producer_since_ns: Option<u64>, sink: &mut dyn ProfileSink) {
        let Some(live) = &mut self.live else { return };
        live.producer_since_ns = producer_since_ns;
        live.in_force = live.at_last_advance;
        live.at_last_advance = live.seen;
        let through = if live.in_force.done { i64::MAX } else { live.in_force.through_ns };
        live.incoming.append(&mut self.ledger.memory);
        live.incoming.sort_by_key(|m| m.ts);
        let settled = live.incoming.partition_point(|m| m.ts <= through);
        for m in live.incoming.drain(..settled) {
            if self.memory.last_ts().is_some_and(|last| m.ts < last) {
                live.out_of_order += 1;
            } else {
                self.memory.push(m);
            }
        }
        let closed = self.ledger.memory_windows.take_closed();
        if !closed.is_empty() {
            self.memory_windows.extend(closed);
            merge_runs(&mut self.memory_windows);
        }
        for (ts, bytes) in self.memory.levels().skip(live.emitted).take_while(|&(ts, _)| ts <= through) {
            let at = ts.max(0) as u64;
            sink.memory_level(&MemoryLevel { pool: MemoryPool::Gpu, start_ns: at, end_ns: at, bytes });
            live.emitted += 1;
        }
    }

    /// Whether a closed call's GPU results are all in (always, for a join
    /// that read the whole file first). `unfinished`: the call never ended,
    /// so no event time will come for it.
    pub fn ready(&self, call: &CallGpu, extent: &CallExtent, unfinished: bool) -> bool {
        let Some(live) = &self.live else { return true };
        let timed = match call.instance {
            Some(i) if call.timed && !unfinished => {
                self.ledger.event_ns.contains_key(&i) || self.ledger.untimed.contains(&i)
            }
            _ => true,
        };
        let end = signed(extent.end_ns);
        let memory = match live.producer_since_ns {
            Some(since) if extent.end_ns >= since => live.in_force.done || live.in_force.through_ns >= end,
            _ => true,
        };
        timed && memory
    }

    /// Puts every record taken in force, as at the end of a run: nothing more will come.
    pub fn settle_all(&mut self, sink: &mut dyn ProfileSink) {
        let Some(live) = &mut self.live else { return };
        live.seen.done = true;
        // In force at once: nothing is left to be decoded behind the marks.
        live.at_last_advance = live.seen;
        let since = live.producer_since_ns;
        self.advance(since, sink);
    }

    /// Forgets the allocator's levels that no call can need. At a new gap
    /// in the trace (a mark with it off): those before the gap, but not
    /// before the earliest start of the calls still held; no call open
    /// across a gap is covered. Else, once the levels kept have doubled:
    /// those before the mark in force and before the earliest start of the
    /// calls held or still open. `needed_from(open)` gives that earliest
    /// start (`open`: counting the calls still open), asked only then.
    pub fn forget_settled(&mut self, needed_from: impl FnOnce(bool) -> Option<u64>) {
        let Some(live) = &mut self.live else { return };
        let new_gap = live.in_force.gap_ns.filter(|&g| live.forgotten_to.is_none_or(|f| f < g));
        let before = match new_gap {
            Some(gap) => {
                live.forgotten_to = Some(gap);
                needed_from(false).map_or(gap, |h| gap.min(signed(h)))
            }
            None if self.memory.len() >= 2 * live.kept_after_forget.max(MIN_LEVELS_KEPT) => {
                let through = live.in_force.through_ns;
                needed_from(true).map_or(through, |n| through.min(signed(n)))
            }
            None => return,
        };
        let forgotten = self.memory.forget_before(before);
        live.emitted -= forgotten.min(live.emitted);
        live.kept_after_forget = self.memory.len();
        let ended = self.memory_windows.partition_point(|w| w.end < before);
        self.memory_windows.drain(..ended);
    }

    /// Levels a live join left out because they came out of time order.
    pub fn levels_out_of_order(&self) -> u64 {
        self.live.as_ref().map_or(0, |l| l.out_of_order)
    }

    /// Whether kernel tracing was on for all of `start..=end`.
    fn kernels_traced(&self, start: i64, end: i64) -> bool {
        self.work_traced && self.kernel_windows.as_ref().is_none_or(|w| covered(w, start, end))
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
        if let Some(i) = call.instance {
            self.ledger.untimed.remove(&i);
        }
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
        let (start, end) = (signed(extent.start_ns), signed(extent.end_ns));
        let memory_traced = covered(&self.memory_windows, start, end);
        let memory = memory_traced.then(|| self.memory.delta(start, end)).flatten();
        let reserved_bytes = memory_traced.then(|| self.memory.reserved_peak(start, end)).flatten();
        // A call not wholly traced gets no figures: its work, if any was traced, is in the
        // timeline, and its figures would be a part of it.
        let kernels_traced = self.kernels_traced(start, end);
        let figures = match (kernels_traced, all.is_empty()) {
            (false, _) => None,
            (true, true) => call.instance.is_some().then(GpuMetrics::default),
            (true, false) => {
                let activities = &self.ledger.activities;
                let mut m = summarize(&all, activities, &self.idle, &mut self.scratch);
                m.self_busy_ns = summarize(&own, activities, &self.idle, &mut self.scratch).busy_ns;
                Some(m)
            }
        };
        let frame = frame
            .filter(|_| kernels_traced)
            .map(|f| FrameGpu { busy_own_ns: figures.map_or(f.busy_own_ns, |m| m.busy_ns), ..f });
        ClosedGpu { figures, event_ns, frame, memory, reserved_bytes, inherited: all }
    }

    /// A closing frame's GPU window (its own work's busy time is filled in by the caller).
    fn frame_window(&mut self, extent: CallExtent, all: &[u32]) -> Option<FrameGpu> {
        let (start, end) = (signed(extent.start_ns), signed(extent.end_ns));
        let window = self.windows.frame(start, end, all, &self.ledger.activities, &self.idle)?;
        Some(frame_gpu(&window, 0, |t| t.max(0) as u64))
    }

    /// Orphans launched while the call was open; calls close innermost
    /// first, so each goes to the innermost call open at its launch.
    fn claim_orphans(&mut self, extent: CallExtent, own: &mut Vec<u32>) {
        let (from, to) = (signed(extent.start_ns), signed(extent.end_ns));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, gpu_memory_mark_words, gpu_memory_words};
    use crate::{Catalog, CounterSample, Span};

    struct Levels(Vec<i64>);

    impl ProfileSink for Levels {
        fn span(&mut self, _: &Span, _: &Catalog) {}
        fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
        fn memory_level(&mut self, level: &MemoryLevel) {
            self.0.push(level.bytes);
        }
    }

    /// A run left on: the allocator's trace read every frame for 10,000
    /// frames keeps only the levels since the last gap (or, where the trace
    /// stays on, a bounded number), and hands each level to the sink once.
    #[test]
    fn a_live_join_forgets_the_levels_no_call_can_need() {
        let scale = TickScale { ticks_per_second: 1_000_000_000, start_ticks: 0 };
        for gaps in [true, false] {
            let mut join = GpuJoin::live();
            let mut sink = Levels(Vec::new());
            for f in 0..10_000u64 {
                let t = f * 1000;
                let mut words = Vec::new();
                if gaps || f == 0 {
                    words.extend(gpu_memory_words(0, flag::TRACE_START, t + 10, 0, 0));
                }
                for i in 1..=20 {
                    words.extend(gpu_memory_words(0, 0, t + 10 + 40 * i, i as i64, 0));
                }
                words.extend(gpu_memory_words(0, flag::TRACE_END, t + 900, 0, 0));
                words.extend(gpu_memory_mark_words(t + 900, gaps, false));
                decode(&words, |r| assert!(join.take(&r, 1, scale))).unwrap();
                join.advance(Some(0), &mut sink);
                join.forget_settled(|_| None);
                let most = if gaps { 2 * 22 } else { 2 * MIN_LEVELS_KEPT + 22 };
                assert!(join.memory.len() <= most, "frame {f}: {} levels held", join.memory.len());
                assert!(join.memory_windows.len() <= 2, "frame {f}: {} windows held", join.memory_windows.len());
            }
            join.settle_all(&mut sink);
            let levels = if gaps { 10_000 * 22 } else { 10_000 * 21 + 1 };
            assert_eq!(sink.0.len(), levels, "gaps: {gaps}");
        }
    }
}
