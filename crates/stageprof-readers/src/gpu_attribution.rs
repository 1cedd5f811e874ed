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

use stageprof_model::ingest::gpu_work::{summarize, Activity, FrameWindow, FrameWindows, IdleContext};
use stageprof_model::{GpuMetrics, SpanKind};

use crate::call_tree::CallTree;
use crate::trace_tables::{Launch, Launches};

/// How GPU work was matched to stages.
#[derive(Debug, Default)]
pub(crate) struct Attribution {
    /// Per activity: the thread of the launch it was joined to (`u32::MAX`: none).
    launch_thread: Vec<u32>,
    /// Per activity: when that launch began; taken by [`Attribution::take_launch_times`].
    launch_ts: Vec<Option<i64>>,
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
pub(crate) fn frame_thread(tree: &CallTree) -> Option<u32> {
    let mut frames: HashMap<u32, usize> = HashMap::new();
    for c in tree.calls.iter().filter(|c| c.kind == SpanKind::Frame) {
        *frames.entry(c.thread).or_default() += 1;
    }
    frames.into_iter().max_by_key(|&(t, n)| (n, std::cmp::Reverse(t))).map(|(t, _)| t)
}

/// Assigns every GPU activity to the stage call that launched it.
pub(crate) fn attribute_gpu_activity(
    tree: &CallTree,
    launches: &Launches,
    activities: &[Activity],
    frame_thread: Option<u32>,
) -> Attribution {
    let mut out = Attribution { call_of: Vec::with_capacity(activities.len()), ..Attribution::default() };
    let first_launch = launches.first_id().unwrap_or(i64::MAX);
    for a in activities {
        let launch = launches.of(a.correlation, a.start);
        out.launch_thread.push(launch.map_or(u32::MAX, |l| l.thread));
        out.launch_ts.push(launch.map(|l| l.ts));
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
    /// When each activity was launched, where its launch is in the trace,
    /// for the [`IdleContext`] (which keeps them: [`Attribution::launch`] reads them there).
    pub(crate) fn take_launch_times(&mut self) -> Vec<Option<i64>> {
        std::mem::take(&mut self.launch_ts)
    }

    /// The launch activity `i` was joined to.
    pub(crate) fn launch(&self, i: usize, idle: &IdleContext) -> Option<Launch> {
        let thread = *self.launch_thread.get(i).filter(|&&t| t != u32::MAX)?;
        Some(Launch { thread, dur: 0, ts: idle.launched(i)? })
    }
}

/// Activities grouped by the call they belong to, so that a call's subtree
/// (it and its nested calls) is one contiguous run.
pub(crate) struct ActivitiesByCall {
    offsets: Vec<usize>,
    grouped: Vec<u32>,
}

impl ActivitiesByCall {
    pub(crate) fn new(tree: &CallTree, attribution: &Attribution) -> ActivitiesByCall {
        let n = tree.calls.len();
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
        ActivitiesByCall { offsets, grouped }
    }

    /// What call `i` launched itself.
    pub(crate) fn own(&self, i: usize) -> &[u32] {
        &self.grouped[self.offsets[i]..self.offsets[i + 1]]
    }

    /// What call `i` and its nested calls launched.
    pub(crate) fn subtree(&self, tree: &CallTree, i: usize) -> &[u32] {
        &self.grouped[self.offsets[i]..self.offsets[tree.subtree_end[i] as usize]]
    }
}

/// GPU figures of every call (its nested calls' work included).
pub(crate) fn gpu_metrics_per_call(
    tree: &CallTree,
    by_call: &ActivitiesByCall,
    activities: &[Activity],
    idle: &IdleContext,
) -> Vec<Option<GpuMetrics>> {
    let mut scratch = Vec::new();
    (0..tree.calls.len())
        .map(|i| {
            let all = by_call.subtree(tree, i);
            if all.is_empty() {
                return None;
            }
            let mut m = summarize(all, activities, idle, &mut scratch);
            m.self_busy_ns = summarize(by_call.own(i), activities, idle, &mut scratch).busy_ns;
            Some(m)
        })
        .collect()
}

/// The GPU window of every frame call (in the trace's time), in start order.
pub(crate) fn frame_windows(
    tree: &CallTree,
    by_call: &ActivitiesByCall,
    activities: &[Activity],
    idle: &IdleContext,
) -> Vec<Option<FrameWindow>> {
    let mut frames: Vec<usize> = (0..tree.calls.len()).filter(|&i| tree.calls[i].kind == SpanKind::Frame).collect();
    frames.sort_by_key(|&i| (tree.calls[i].start, i));
    let mut windows = FrameWindows::new(activities, idle);
    let mut out = vec![None; tree.calls.len()];
    for i in frames {
        let c = tree.calls[i];
        out[i] = windows.frame(c.start, c.end, by_call.subtree(tree, i), activities, idle);
    }
    out
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
        let mut launches = Launches::default();
        for (id, thread, ts) in [
            (1, 1, 150),  // in b
            (2, 1, 300),  // in a
            (3, 9, 600),  // autograd-like thread while c is open
            (4, 1, 450),  // in the frame, between stages
            (5, 9, 5000), // outside everything
        ] {
            launches.insert(id, Launch { thread, dur: 5, ts });
        }
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
        let mut attr = attr;
        let idle = IdleContext::new(attr.take_launch_times(), &[]);
        let m = gpu_metrics_per_call(&tree, &ActivitiesByCall::new(&tree, &attr), &acts, &idle);
        // a: kernels [1000,1100) and [1050,1300): busy 300, span 300, own busy 250.
        let a = m[1].unwrap();
        assert_eq!((a.kernels, a.busy_ns, a.span_ns, a.self_busy_ns), (2, 300, 300, 250));
        // The frame: everything but the outside kernel: busy 300 + 10 + 100, span 1000..1500.
        let f = m[0].unwrap();
        assert_eq!((f.kernels, f.busy_ns, f.span_ns, f.self_busy_ns), (4, 410, 500, 10));
        assert_eq!(m[3].unwrap().busy_ns, 100);
    }
}
