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

use stageprof_analysis::gpu_work::{summarize, Activity, IdleContext};
use stageprof_model::{GpuMetrics, SpanKind};

use crate::call_tree::CallTree;
use crate::trace_tables::{Launch, Launches};

/// How GPU work was matched to stages.
#[derive(Debug, Default)]
pub struct Attribution {
    /// Per activity: the launch it was joined to.
    pub launch_of: Vec<Option<Launch>>,
    /// Per activity: the call it belongs to.
    pub call_of: Vec<Option<u32>>,
    /// Activities whose correlation id matched no launch.
    pub no_launch: u64,
    /// Of those, the ones that carry no correlation id at all.
    pub no_correlation: u64,
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
    launches: &Launches,
    activities: &[Activity],
    frame_thread: Option<u32>,
) -> Attribution {
    let mut out = Attribution { call_of: Vec::with_capacity(activities.len()), ..Attribution::default() };
    out.launch_of = activities.iter().map(|a| launches.of(a.correlation, a.start)).collect();
    let first_launch = launches.first_id().unwrap_or(i64::MAX);
    for (a, launch) in activities.iter().zip(&out.launch_of) {
        let Some(launch) = launch else {
            out.no_launch += 1;
            out.no_correlation += u64::from(a.correlation < 0);
            out.launched_before_trace += u64::from((0..first_launch).contains(&a.correlation));
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

impl Attribution {
    /// When each activity was launched, where its launch is in the trace.
    pub fn launch_times(&self) -> Vec<Option<i64>> {
        self.launch_of.iter().map(|l| l.map(|l| l.ts)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_tables::Call;
    use stageprof_model::GpuWork;

    fn call(thread: u32, kind: SpanKind, start: i64, end: i64) -> Call {
        Call { thread, kind, name: 0, start, end }
    }

    fn kernel(correlation: i64, start: i64, end: i64) -> Activity {
        Activity {
            correlation,
            device: 0,
            stream: 7,
            work: GpuWork::Kernel,
            name: 0,
            start,
            end,
            bytes: 0,
            shape: None,
        }
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
        let idle = IdleContext::new(launch_times(&launches, &acts), &[]);
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
