//! Backward attribution: the GPU work autograd runs for a forward stage.
//!
//! Autograd numbers the operators a forward pass records (`Sequence
//! number`); the backward operators it later runs on its own threads carry
//! the same number. So a kernel launched inside a backward operator belongs,
//! besides the stage open when it was launched (usually a `backward`
//! stage), to the forward stage that recorded the operator: reported as a
//! derived stage `<stage> (backward)` beside it.

use std::collections::HashMap;

use stageprof_model::SpanKind;

use crate::call_tree::CallTree;

use crate::trace_tables::{AutogradOp, Call, Launch};

/// The backward work of one forward stage call.
#[derive(Debug, Default)]
pub(crate) struct BackwardOfCall {
    /// The forward stage call (an index into the main [`CallTree`]).
    pub forward_call: u32,
    /// The thread the backward ran on, and when (first to last backward operator).
    pub thread: u32,
    pub start: i64,
    pub end: i64,
    /// Indices of the GPU activities it launched.
    pub activities: Vec<u32>,
}

/// The innermost stage (not frame) of `thread` open at `ts`.
fn innermost_stage(tree: &CallTree, thread: u32, ts: i64) -> Option<u32> {
    let mut at = tree.innermost(thread, ts)?;
    while tree.calls[at as usize].kind != SpanKind::Stage {
        at = tree.parent[at as usize]?;
    }
    Some(at)
}

/// Groups GPU work (`launch_of(i)`: activity `i`'s launch) launched by backward operators under the forward stage
/// calls that recorded them.
pub(crate) fn attribute_backward(
    stages: &CallTree,
    ops: &[AutogradOp],
    launch_of: impl Fn(usize) -> Option<Launch>,
    activities: usize,
) -> Vec<BackwardOfCall> {
    // Sequence numbers repeat when a profiler restarts within a trace: a
    // backward operator belongs to the latest forward one before it.
    let mut forward_stage: HashMap<i64, Vec<(i64, u32)>> = HashMap::new();
    for o in ops.iter().filter(|o| !o.backward) {
        if let Some(stage) = innermost_stage(stages, o.thread, o.start) {
            forward_stage.entry(o.seq).or_default().push((o.start, stage));
        }
    }
    for list in forward_stage.values_mut() {
        list.sort_unstable();
    }
    let forward_of = |o: &AutogradOp| -> Option<u32> {
        let list = forward_stage.get(&o.seq)?;
        let before = list.partition_point(|&(t, _)| t <= o.start);
        Some(list[before.saturating_sub(1)].1)
    };
    // Backward operators nest like stages; the tree finds the one open at a launch.
    // Each one's `name` holds its forward stage call.
    let backward_ops: Vec<Call> = ops
        .iter()
        .filter(|o| o.backward)
        .filter_map(|o| {
            let forward = forward_of(o)?;
            Some(Call { thread: o.thread, kind: SpanKind::Stage, name: forward, start: o.start, end: o.end })
        })
        .collect();
    if backward_ops.is_empty() {
        return Vec::new();
    }
    let tree = CallTree::build(backward_ops);
    let mut by_call: HashMap<u32, BackwardOfCall> = HashMap::new();
    for i in 0..activities {
        let Some(launch) = launch_of(i) else { continue };
        let Some(op) = tree.innermost(launch.thread, launch.ts) else { continue };
        let op = tree.calls[op as usize];
        let entry = by_call.entry(op.name).or_insert_with(|| BackwardOfCall {
            forward_call: op.name,
            thread: op.thread,
            start: op.start,
            end: op.end,
            activities: Vec::new(),
        });
        entry.start = entry.start.min(op.start);
        entry.end = entry.end.max(op.end);
        entry.activities.push(i as u32);
    }
    let mut out: Vec<BackwardOfCall> = by_call.into_values().collect();
    out.sort_by_key(|b| (b.start, b.forward_call));
    out
}
