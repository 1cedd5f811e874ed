//! What a set of GPU activities adds up to: counts, bytes, busy time (the
//! union of their intervals), span, and idle time by cause; and what the
//! device did in each frame's window. The trace readers and the native
//! reader both attribute activities to calls, then hand each call's
//! activities here, so the figures mean the same for both.

use foldhash::{HashMap, HashMapExt};

use crate::{CopyKind, FrameGpu, GpuMetrics, GpuWork, LaunchShape, NameId};

/// A kernel, copy or memset on a GPU. Times are in the producer's units
/// (nanoseconds); `correlation` joins it to what launched it (negative: the
/// tracer gave none).
#[derive(Clone, Copy, Debug)]
pub struct Activity {
    /// Joins the work to its launch.
    pub correlation: i64,
    /// Device and stream (a trace's pid and tid for GPU events).
    pub device: u32,
    /// The stream it ran on.
    pub stream: u32,
    /// What kind of work it was.
    pub work: GpuWork,
    /// Its name.
    pub name: NameId,
    /// Start, in the trace's time.
    pub start: i64,
    /// End, in the trace's time.
    pub end: i64,
    /// Bytes copied or set.
    pub bytes: u64,
    /// Grid and block, where known.
    pub shape: Option<LaunchShape>,
}

/// What idle time is classified by: when each activity was launched, and
/// when the host was blocked.
pub struct IdleContext {
    /// Per activity (same index): the time of its launch call, if known.
    launch_ts: Vec<Option<i64>>,
    /// Blocking intervals, merged and sorted.
    blocked: Vec<(i64, i64)>,
}

impl IdleContext {
    /// `launch_ts[i]`: when activity `i` was launched, if known; `syncs`: when the host was blocked.
    pub fn new(launch_ts: Vec<Option<i64>>, syncs: &[(i64, i64)]) -> IdleContext {
        let mut sorted = syncs.to_vec();
        sorted.sort_unstable();
        let mut blocked: Vec<(i64, i64)> = Vec::new();
        for (s, e) in sorted {
            match blocked.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => blocked.push((s, e)),
            }
        }
        IdleContext { launch_ts, blocked }
    }

    /// When activity `i` was launched, if known.
    pub fn launched(&self, i: usize) -> Option<i64> {
        self.launch_ts.get(i).copied().flatten()
    }

    /// Whether the host was blocked at some point of `[a, b]`.
    fn blocked_during(&self, a: i64, b: i64) -> bool {
        let first = self.blocked.partition_point(|&(_, e)| e < a);
        self.blocked.get(first).is_some_and(|&(s, _)| s <= b)
    }
}

/// Counts, bytes, span, busy time (union of intervals) and idle time by
/// cause of some activities (indices into `activities`); `runs` is scratch.
pub fn summarize(acts: &[u32], activities: &[Activity], idle: &IdleContext, runs: &mut Vec<BusyRun>) -> GpuMetrics {
    let mut m = GpuMetrics::default();
    runs.clear();
    for &i in acts {
        let a = &activities[i as usize];
        runs.push(BusyRun::of(a, idle.launched(i as usize)));
        match a.work {
            GpuWork::Kernel => m.kernels += 1,
            GpuWork::Memset => m.memsets += 1,
            GpuWork::Copy(kind) => {
                let d = CopyKind::ALL.iter().position(|k| *k == kind).unwrap_or(3);
                m.copies += 1;
                m.copy_bytes[d] = m.copy_bytes[d].saturating_add(a.bytes);
                m.copy_ns[d] = m.copy_ns[d].saturating_add(a.end.saturating_sub(a.start).max(0) as u64);
            }
        }
    }
    merge_runs(runs);
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else { return m };
    let (from, to) = (first.start, last.end);
    let (busy, [host, sync, other]) = busy_and_idle(runs, from, to, idle);
    m.busy_ns = busy;
    m.span_ns = to.saturating_sub(from).max(0) as u64;
    (m.idle_host_ns, m.idle_sync_ns, m.idle_other_ns) = (host, sync, other);
    m
}

/// Busy time of merged `runs` within `[from, to)`, and the idle time there
/// by cause: each gap is judged by the work that ends it (a gap at the end
/// of the window, which no work ends, is "other").
fn busy_and_idle(runs: &[BusyRun], from: i64, to: i64, idle: &IdleContext) -> (u64, [u64; 3]) {
    let mut busy = 0u64;
    let mut idle_ns = [0u64; 3];
    let mut add_idle = |g0: i64, g1: i64, launched: Option<i64>| {
        for (total, part) in idle_ns.iter_mut().zip(idle_by_cause(idle, g0, g1, launched)) {
            *total = total.saturating_add(part);
        }
    };
    let mut at = from;
    for r in runs {
        busy = busy.saturating_add(r.end.saturating_sub(r.start).max(0) as u64);
        if r.start > at {
            add_idle(at, r.start, r.launched());
        }
        at = at.max(r.end);
    }
    if to > at {
        add_idle(at, to, None);
    }
    (busy, idle_ns)
}

/// The idle gap `[g0, g1)` before an activity launched at `launched`, by
/// cause: waiting for the host, synchronization, other.
///
/// Until the next work was launched the GPU waited for the host: because
/// the host sat in a synchronization or blocking copy during that time (the
/// pipeline drained), or because it was busy elsewhere. Idle time after the
/// launch, or when the work was already queued, has other causes (stream
/// dependencies, launch latency).
fn idle_by_cause(idle: &IdleContext, g0: i64, g1: i64, launched: Option<i64>) -> [u64; 3] {
    let late_until = launched.map_or(g0, |l| l.clamp(g0, g1));
    let late = late_until.saturating_sub(g0).max(0) as u64;
    let other = g1.saturating_sub(late_until).max(0) as u64;
    if late > 0 && idle.blocked_during(g0, late_until) {
        [0, late, other]
    } else {
        [late, 0, other]
    }
}

/// A stretch of time a device was busy without a break, and when the work
/// that opened it was launched (which says why the device was idle before it).
#[derive(Clone, Copy, Debug)]
pub struct BusyRun {
    pub(super) start: i64,
    pub(super) end: i64,
    /// `i64::MIN` where not known (a plain i64 keeps the run at 24 bytes).
    launched: i64,
}

impl BusyRun {
    /// A window of time with no launch behind it.
    pub(super) fn window(start: i64, end: i64) -> BusyRun {
        BusyRun { start, end: end.max(start), launched: i64::MIN }
    }

    fn of(a: &Activity, launched: Option<i64>) -> BusyRun {
        BusyRun { start: a.start, end: a.end.max(a.start), launched: launched.unwrap_or(i64::MIN) }
    }

    fn launched(&self) -> Option<i64> {
        (self.launched != i64::MIN).then_some(self.launched)
    }
}

/// A frame's GPU window and what its device(s) did in it, in the producer's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameWindow {
    /// Start, in the trace's time.
    pub start: i64,
    /// End, in the trace's time.
    pub end: i64,
    /// Device busy time in the window, all work.
    pub busy_ns: u64,
    /// Idle time in the window: waiting for the host, synchronization, other.
    pub idle_ns: [u64; 3],
}

/// Frames' GPU windows, taken in the order of the frames' start.
///
/// A frame's GPU work is what its own calls launched (nested stages
/// included) and anything launched, from any thread, while the frame was
/// open. Its window runs from the first start to the last end of that work,
/// but starts no earlier than the previous frame's window ended: when the
/// GPU runs behind the CPU, the overlap belongs to the earlier frame, so no
/// time is counted in two frames. Busy time in the window is the device's
/// (all work on the devices the frame's work ran on, whoever launched it).
pub struct FrameWindows {
    /// Per device: when it was busy, merged and sorted.
    runs: HashMap<u32, Vec<BusyRun>>,
    /// Activities with a known launch time, in the order of that time.
    by_launch: Vec<u32>,
    previous_end: i64,
    scratch: Vec<BusyRun>,
    work: Vec<u32>,
}

impl FrameWindows {
    /// The windows of frames whose work is `activities`, told apart by `idle`.
    pub fn new(activities: &[Activity], idle: &IdleContext) -> FrameWindows {
        let launched = |i: usize| idle.launched(i);
        let mut per_device: HashMap<u32, Vec<BusyRun>> = HashMap::new();
        for (i, a) in activities.iter().enumerate() {
            per_device.entry(a.device).or_default().push(BusyRun::of(a, launched(i)));
        }
        for list in per_device.values_mut() {
            merge_runs(list);
            list.shrink_to_fit();
        }
        let mut by_launch: Vec<u32> =
            (0..activities.len() as u32).filter(|&i| launched(i as usize).is_some()).collect();
        by_launch.sort_unstable_by_key(|&i| (launched(i as usize), i));
        let runs = per_device;
        FrameWindows { runs, by_launch, previous_end: i64::MIN, scratch: Vec::new(), work: Vec::new() }
    }

    /// The window of the frame open from `start` to `end` whose calls
    /// launched `own`; `None` when no GPU work belongs to it.
    pub fn frame(
        &mut self,
        start: i64,
        end: i64,
        own: &[u32],
        activities: &[Activity],
        idle: &IdleContext,
    ) -> Option<FrameWindow> {
        self.work.clear();
        self.work.extend_from_slice(own);
        let launched = |i: u32| idle.launched(i as usize).unwrap_or(i64::MIN);
        let from = self.by_launch.partition_point(|&i| launched(i) < start);
        self.work.extend(self.by_launch[from..].iter().take_while(|&&i| launched(i) < end));
        let first = self.work.iter().map(|&i| activities[i as usize].start).min()?;
        let last = self.work.iter().map(|&i| activities[i as usize].end).max()?;
        let w0 = first.max(self.previous_end);
        let w1 = last.max(w0);
        self.previous_end = w1;
        let mut devices: Vec<u32> = self.work.iter().map(|&i| activities[i as usize].device).collect();
        devices.sort_unstable();
        devices.dedup();
        self.scratch.clear();
        for runs in devices.iter().filter_map(|d| self.runs.get(d)) {
            let at = runs.partition_point(|r| r.end <= w0);
            let inside = runs[at..].iter().take_while(|r| r.start < w1);
            self.scratch.extend(inside.map(|r| BusyRun { start: r.start.max(w0), end: r.end.min(w1), ..*r }));
        }
        merge_runs(&mut self.scratch);
        let (busy_ns, idle_ns) = busy_and_idle(&self.scratch, w0, w1, idle);
        Some(FrameWindow { start: w0, end: w1, busy_ns, idle_ns })
    }
}

/// A frame's figures for the model: `window` in the producer's time, made
/// relative to the profile's start by `rel`; `busy_own_ns` is the busy time
/// of what the frame's own calls launched.
pub fn frame_gpu(window: &FrameWindow, busy_own_ns: u64, rel: impl Fn(i64) -> u64) -> FrameGpu {
    let [idle_host_ns, idle_sync_ns, idle_other_ns] = window.idle_ns;
    FrameGpu {
        start_ns: rel(window.start),
        span_ns: window.end.saturating_sub(window.start).max(0) as u64,
        busy_ns: window.busy_ns,
        busy_own_ns,
        idle_host_ns,
        idle_sync_ns,
        idle_other_ns,
    }
}

/// Sorts runs and merges them, in place, into disjoint ones; each keeps the
/// launch time of the work that opened it (of runs that start together, the
/// earliest launched, unknown first).
pub(super) fn merge_runs(runs: &mut Vec<BusyRun>) {
    runs.sort_unstable_by_key(|r| (r.start, r.end, r.launched));
    let mut kept = 0;
    for i in 0..runs.len() {
        let r = runs[i];
        if kept > 0 && r.start <= runs[kept - 1].end {
            runs[kept - 1].end = runs[kept - 1].end.max(r.end);
        } else {
            runs[kept] = r;
            kept += 1;
        }
    }
    runs.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_gaps_are_split_by_cause() {
        let k = |c: i64, s: i64, e: i64| Activity {
            correlation: c,
            device: 0,
            stream: 7,
            work: GpuWork::Kernel,
            name: 0,
            start: s,
            end: e,
            bytes: 0,
            shape: None,
        };
        // Busy [0,100), gap to 200: the next kernel was launched at 150 (host 50, other 50).
        // Busy [200,300), gap to 500: launched at 450 after the host was blocked [320, 420) (sync 150, other 50).
        // Busy [500,600), gap to 700: launched at 450, long before (other 100), though a sync covers it.
        let acts = [k(1, 0, 100), k(2, 200, 300), k(3, 500, 600), k(4, 700, 800)];
        let launched = vec![Some(-10), Some(150), Some(450), Some(460)];
        let idle = IdleContext::new(launched, &[(320, 380), (350, 420), (610, 900)]);
        let m = summarize(&[0, 1, 2, 3], &acts, &idle, &mut Vec::new());
        assert_eq!((m.busy_ns, m.span_ns), (400, 800));
        assert_eq!((m.idle_host_ns, m.idle_sync_ns, m.idle_other_ns), (50, 150, 200));
        assert_eq!(m.idle_host_ns + m.idle_sync_ns + m.idle_other_ns, m.span_ns - m.busy_ns);
    }
}
