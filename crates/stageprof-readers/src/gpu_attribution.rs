//! Which stage launched each piece of GPU work, and what that adds up to
//! per stage call.
//!
//! A kernel, copy or memset carries the correlation id of the runtime or
//! driver call that launched it; the stage is the innermost call open on
//! that thread at that moment. Threads with no stage of their own (autograd's
//! backward threads, data loaders) launch on behalf of the stage open at that
//! moment on the thread that owns the frames. Flow events are not used: real
//! traces have dangling ones.

use std::collections::HashMap;

use stageprof_model::{CopyKind, GpuMetrics, SpanKind};

use crate::call_tree::CallTree;
use crate::trace_tables::{Activity, ActivityKind, Launch};

/// How GPU work was matched to stages.
#[derive(Debug, Default)]
pub struct Attribution {
    /// Per activity: the call it belongs to.
    pub call_of: Vec<Option<u32>>,
    /// Activities whose correlation id matched no launch.
    pub no_launch: u64,
    /// Of those, the ones whose id is below every launch's: launched before
    /// the trace began (the CPU runs ahead of the GPU), so not in it.
    pub launched_before_trace: u64,
    /// Activities launched outside any stage or frame.
    pub outside: u64,
    pub outside_ns: u64,
}

/// The thread that owns the frames: the one with the most frame calls.
pub fn frame_thread(tree: &CallTree) -> Option<u32> {
    let mut frames: HashMap<u32, usize> = HashMap::new();
    for c in tree.calls.iter().filter(|c| c.kind == SpanKind::Frame) {
        *frames.entry(c.thread).or_default() += 1;
    }
    frames.into_iter().max_by_key(|&(t, n)| (n, std::cmp::Reverse(t))).map(|(t, _)| t)
}

/// Assigns every GPU activity to the stage call that launched it.
pub fn attribute_gpu_activity(
    tree: &CallTree,
    launches: &HashMap<i64, Launch>,
    activities: &[Activity],
    frame_thread: Option<u32>,
) -> Attribution {
    let mut out = Attribution { call_of: Vec::with_capacity(activities.len()), ..Attribution::default() };
    let first_launch = launches.keys().min().copied().unwrap_or(i64::MAX);
    for a in activities {
        let Some(launch) = launches.get(&a.correlation) else {
            out.no_launch += 1;
            out.launched_before_trace += u64::from(a.correlation < first_launch);
            out.call_of.push(None);
            continue;
        };
        let mut call = tree.innermost(launch.thread, launch.ts);
        let is_stage = |c: Option<u32>| c.is_some_and(|c| tree.calls[c as usize].kind == SpanKind::Stage);
        if !is_stage(call) {
            if let Some(owner) = frame_thread.filter(|&t| t != launch.thread) {
                call = tree.innermost(owner, launch.ts).or(call);
            }
        }
        if call.is_none() {
            out.outside += 1;
            out.outside_ns = out.outside_ns.saturating_add(a.end.saturating_sub(a.start).max(0) as u64);
        }
        out.call_of.push(call);
    }
    out
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
    pub fn new(launches: &HashMap<i64, Launch>, activities: &[Activity], syncs: &[(i64, i64)]) -> IdleContext {
        let launch_ts = activities.iter().map(|a| launches.get(&a.correlation).map(|l| l.ts)).collect();
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

    /// Whether the host was blocked at some point of `[a, b]`.
    fn blocked_during(&self, a: i64, b: i64) -> bool {
        let first = self.blocked.partition_point(|&(_, e)| e < a);
        self.blocked.get(first).is_some_and(|&(s, _)| s <= b)
    }
}

/// GPU figures of every call (its nested calls' work included), from the attribution.
pub fn gpu_metrics_per_call(
    tree: &CallTree,
    activities: &[Activity],
    attribution: &Attribution,
    idle: &IdleContext,
) -> Vec<Option<GpuMetrics>> {
    let n = tree.calls.len();
    // Activities grouped by call: a call's subtree is then one contiguous run.
    let mut offsets = vec![0usize; n + 1];
    for c in attribution.call_of.iter().flatten() {
        offsets[*c as usize + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut grouped = vec![0u32; offsets[n]];
    for (a, c) in attribution.call_of.iter().enumerate() {
        if let Some(c) = c {
            grouped[fill[*c as usize]] = a as u32;
            fill[*c as usize] += 1;
        }
    }
    let mut scratch = Vec::new();
    (0..n)
        .map(|i| {
            let all = &grouped[offsets[i]..offsets[tree.subtree_end[i] as usize]];
            if all.is_empty() {
                return None;
            }
            let own = &grouped[offsets[i]..offsets[i + 1]];
            let mut m = summarize(all, activities, idle, &mut scratch);
            m.self_busy_ns = summarize(own, activities, idle, &mut scratch).busy_ns;
            Some(m)
        })
        .collect()
}

/// Counts, bytes, span, busy time (union of intervals) and idle time by
/// cause of some activities (indices into `activities`).
pub fn summarize(
    acts: &[u32],
    activities: &[Activity],
    idle: &IdleContext,
    intervals: &mut Vec<(i64, i64, Option<i64>)>,
) -> GpuMetrics {
    let mut m = GpuMetrics::default();
    intervals.clear();
    for &i in acts {
        let a = &activities[i as usize];
        intervals.push((a.start, a.end.max(a.start), idle.launch_ts.get(i as usize).copied().flatten()));
        match a.kind {
            ActivityKind::Kernel => m.kernels += 1,
            ActivityKind::Memset => m.memsets += 1,
            ActivityKind::Copy(kind) => {
                let d = CopyKind::ALL.iter().position(|k| *k == kind).unwrap_or(3);
                m.copies += 1;
                m.copy_bytes[d] = m.copy_bytes[d].saturating_add(a.bytes);
                m.copy_ns[d] = m.copy_ns[d].saturating_add(a.end.saturating_sub(a.start).max(0) as u64);
            }
        }
    }
    if intervals.is_empty() {
        return m;
    }
    intervals.sort_unstable();
    let first = intervals[0].0;
    let mut busy = 0i64;
    let (mut cur_start, mut cur_end) = (intervals[0].0, intervals[0].1);
    for &(s, e, launched) in intervals.iter() {
        if s > cur_end {
            busy = busy.saturating_add(cur_end.saturating_sub(cur_start));
            classify_gap(&mut m, idle, cur_end, s, launched);
            cur_start = s;
        }
        cur_end = cur_end.max(e);
    }
    busy = busy.saturating_add(cur_end.saturating_sub(cur_start));
    m.busy_ns = busy.max(0) as u64;
    m.span_ns = cur_end.saturating_sub(first).max(0) as u64;
    m
}

/// Splits the idle gap `[g0, g1)` before an activity launched at `launched`.
///
/// Until the next work was launched the GPU waited for the host: because
/// the host sat in a synchronization or blocking copy during that time (the
/// pipeline drained), or because it was busy elsewhere. Idle time after the
/// launch, or when the work was already queued, has other causes (stream
/// dependencies, launch latency).
fn classify_gap(m: &mut GpuMetrics, idle: &IdleContext, g0: i64, g1: i64, launched: Option<i64>) {
    let late_until = launched.map_or(g0, |l| l.clamp(g0, g1));
    let late = late_until.saturating_sub(g0).max(0) as u64;
    if late > 0 && idle.blocked_during(g0, late_until) {
        m.idle_sync_ns = m.idle_sync_ns.saturating_add(late);
    } else {
        m.idle_host_ns = m.idle_host_ns.saturating_add(late);
    }
    m.idle_other_ns = m.idle_other_ns.saturating_add(g1.saturating_sub(late_until).max(0) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_tables::Call;

    fn call(thread: u32, kind: SpanKind, start: i64, end: i64) -> Call {
        Call { thread, kind, name: 0, start, end }
    }

    fn kernel(correlation: i64, start: i64, end: i64) -> Activity {
        Activity { correlation, device: 0, stream: 7, kind: ActivityKind::Kernel, name: 0, start, end, bytes: 0 }
    }

    #[test]
    fn launches_join_stages_and_foreign_threads_borrow_the_frame_thread() {
        // Thread 1 owns the frame [0, 1000) with stages a [0, 400) > b [100, 200), and c [500, 900).
        let tree = CallTree::build(vec![
            call(1, SpanKind::Frame, 0, 1000),
            call(1, SpanKind::Stage, 0, 400),
            call(1, SpanKind::Stage, 100, 200),
            call(1, SpanKind::Stage, 500, 900),
        ]);
        let launches = HashMap::from([
            (1, Launch { thread: 1, ts: 150 }),  // in b
            (2, Launch { thread: 1, ts: 300 }),  // in a
            (3, Launch { thread: 9, ts: 600 }),  // autograd-like thread while c is open
            (4, Launch { thread: 1, ts: 450 }),  // in the frame, between stages
            (5, Launch { thread: 9, ts: 5000 }), // outside everything
        ]);
        let acts = [
            kernel(1, 1000, 1100),
            kernel(2, 1050, 1300),
            kernel(3, 1400, 1500),
            kernel(4, 1310, 1320),
            kernel(5, 9000, 9010),
            kernel(77, 0, 1),
        ];
        let attr = attribute_gpu_activity(&tree, &launches, &acts, frame_thread(&tree));
        assert_eq!(attr.call_of, [Some(2), Some(1), Some(3), Some(0), None, None]);
        assert_eq!((attr.no_launch, attr.outside, attr.outside_ns), (1, 1, 10));
        let idle = IdleContext::new(&launches, &acts, &[]);
        let m = gpu_metrics_per_call(&tree, &acts, &attr, &idle);
        // a: kernels [1000,1100) and [1050,1300): busy 300, span 300, own busy 250.
        let a = m[1].unwrap();
        assert_eq!((a.kernels, a.busy_ns, a.span_ns, a.self_busy_ns), (2, 300, 300, 250));
        // The frame: everything but the outside kernel: busy 300 + 10 + 100, span 1000..1500.
        let f = m[0].unwrap();
        assert_eq!((f.kernels, f.busy_ns, f.span_ns, f.self_busy_ns), (4, 410, 500, 10));
        assert_eq!(m[3].unwrap().busy_ns, 100);
    }
}

#[cfg(test)]
mod idle_tests {
    use super::*;

    #[test]
    fn idle_gaps_are_split_by_cause() {
        let k = |c: i64, s: i64, e: i64| Activity {
            correlation: c,
            device: 0,
            stream: 7,
            kind: ActivityKind::Kernel,
            name: 0,
            start: s,
            end: e,
            bytes: 0,
        };
        // Busy [0,100), gap to 200: the next kernel was launched at 150 (host 50, other 50).
        // Busy [200,300), gap to 500: launched at 450 after the host was blocked [320, 420) (sync 150, other 50).
        // Busy [500,600), gap to 700: launched at 450, long before (other 100), though a sync covers it.
        let acts = [k(1, 0, 100), k(2, 200, 300), k(3, 500, 600), k(4, 700, 800)];
        let launches = HashMap::from([
            (1, Launch { thread: 1, ts: -10 }),
            (2, Launch { thread: 1, ts: 150 }),
            (3, Launch { thread: 1, ts: 450 }),
            (4, Launch { thread: 1, ts: 460 }),
        ]);
        let idle = IdleContext::new(&launches, &acts, &[(320, 380), (350, 420), (610, 900)]);
        let m = summarize(&[0, 1, 2, 3], &acts, &idle, &mut Vec::new());
        assert_eq!((m.busy_ns, m.span_ns), (400, 800));
        assert_eq!((m.idle_host_ns, m.idle_sync_ns, m.idle_other_ns), (50, 150, 200));
        assert_eq!(m.idle_host_ns + m.idle_sync_ns + m.idle_other_ns, m.span_ns - m.busy_ns);
    }
}
