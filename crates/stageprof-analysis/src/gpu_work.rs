//! What a set of GPU activities adds up to: counts, bytes, busy time (the
//! union of their intervals), span, and idle time by cause. The trace
//! readers and the native reader both attribute activities to calls, then
//! hand each call's activities here, so the figures mean the same for both.

use stageprof_model::{CopyKind, GpuMetrics, GpuWork, LaunchShape, NameId};

/// A kernel, copy or memset on a GPU. Times are in the producer's units
/// (nanoseconds); `correlation` joins it to what launched it (negative: the
/// tracer gave none).
#[derive(Clone, Copy, Debug)]
pub struct Activity {
    pub correlation: i64,
    /// Device and stream (a trace's pid and tid for GPU events).
    pub device: u32,
    pub stream: u32,
    pub work: GpuWork,
    pub name: NameId,
    pub start: i64,
    pub end: i64,
    pub bytes: u64,
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

    /// Whether the host was blocked at some point of `[a, b]`.
    fn blocked_during(&self, a: i64, b: i64) -> bool {
        let first = self.blocked.partition_point(|&(_, e)| e < a);
        self.blocked.get(first).is_some_and(|&(s, _)| s <= b)
    }
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
