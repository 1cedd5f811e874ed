//! Chrome trace JSON and PyTorch profiler (Kineto) traces into the profile
//! model: stages with their CPU time, the GPU work they launched and the
//! memory they used.
//!
//! In a Kineto trace the stages are `user_annotation` events
//! (`torch.profiler.record_function`) and the frames `ProfilerStep#N`; in
//! any other Chrome trace, every complete (`X`) or `B`/`E` event is a stage.

use std::io::Read;

use stageprof_model::{
    Catalog, CounterSample, FrameGpu, GpuActivity, GpuMetrics, MemoryLevel, MemoryPool, PathId, ProfileSink, RunInfo,
    Span, SpanFlags, SpanKind, StageMetrics, Warning,
};

use crate::backward::{attribute_backward, BackwardOfCall};
use crate::call_tree::CallTree;
use crate::gpu_attribution::{
    attribute_gpu_activity, frame_thread, frame_windows, gpu_metrics_per_call, ActivitiesByCall,
};
use crate::json_scan::ScanError;
use crate::trace_tables::{collect, ScanOutcome, Tables};
use stageprof_model::ingest::gpu_work::{frame_gpu, summarize, Activity, IdleContext};
use stageprof_model::ingest::{MemorySeries, Nester};

/// What a trace holds besides its events.
pub(crate) struct TraceProfile {
    pub catalog: Catalog,
    pub run: RunInfo,
}

/// Reads a Chrome/Kineto trace and hands its stages and counters to `sink`.
/// Damage that still leaves events to report becomes warnings in the
/// returned [`RunInfo`]; a file with no readable trace is an error.
pub(crate) fn read_trace(input: impl Read, sink: &mut dyn ProfileSink) -> Result<TraceProfile, ScanError> {
    let (mut tables, mut outcome) = collect(input);
    let mut warnings = Vec::new();
    match outcome.stopped.take() {
        Some(e @ (ScanError::NotJson { .. } | ScanError::NoEvents)) => return Err(e),
        Some(e) if tables.events == 0 => return Err(e),
        Some(e) => warnings.push(Warning::ReadStopped { problem: e.to_string(), events_before: Some(tables.events) }),
        None => {}
    }
    let base = tables.first_ts.unwrap_or(0);
    let rel = |t: i64| t.saturating_sub(base).max(0) as u64;

    let tree = CallTree::build(std::mem::take(&mut tables.calls));
    let owner = frame_thread(&tree);
    let mut attribution = attribute_gpu_activity(&tree, &tables.launches, &tables.activities, owner);
    let idle = IdleContext::new(attribution.take_launch_times(), &tables.syncs);
    let by_call = ActivitiesByCall::new(&tree, &attribution);
    let gpu = gpu_metrics_per_call(&tree, &by_call, &tables.activities, &idle);
    let windows = frame_windows(&tree, &by_call, &tables.activities, &idle);
    let frame_gpu: Vec<Option<FrameGpu>> =
        windows.iter().zip(&gpu).map(|(w, own)| w.map(|w| frame_gpu(&w, own.map_or(0, |g| g.busy_ns), rel))).collect();

    let series = |kind: u8| MemorySeries::build(tables.memory.iter().filter(|(k, _)| *k == kind).map(|(_, m)| *m));
    let memory = Memory { device: series(1), host: series(0) };
    memory.emit_levels(rel, sink);
    let frame_of = tree.frame_numbers(owner);
    emit_calls(
        &tree,
        &CallFigures { gpu: &gpu, frame_gpu: &frame_gpu, frame_of: &frame_of },
        &memory,
        &mut tables.catalog,
        rel,
        sink,
    );
    emit_gpu_activities(&tree, &tables.activities, &attribution, &mut tables.catalog, rel, sink);
    let backward =
        attribute_backward(&tree, &tables.autograd_ops, |i| attribution.launch(i, &idle), tables.activities.len());
    emit_backward_views(&tree, &backward, &mut tables, &idle, rel, sink);
    emit_unstaged_work(&attribution, &mut tables, &idle, rel, sink);
    for c in &tables.counters {
        sink.counter(
            &CounterSample { name: c.name, thread: c.thread, ts_ns: rel(c.ts), value: c.value },
            &tables.catalog,
        );
    }

    warn_about(&tables, &outcome, &tree, &attribution, &mut warnings);
    let run = RunInfo {
        source: if tables.kineto { "pytorch profiler (kineto)".into() } else { "chrome trace".into() },
        start_unix_ns: outcome.base_time_ns.map_or(base, |b| b.saturating_add(base)).max(0) as u64,
        duration_ns: tables.last_ts.map_or(0, rel),
        memory_tracked: !memory.host.is_empty(),
        end_reason: "finish".into(),
        warnings,
        rank: outcome.rank,
        devices: std::mem::take(&mut outcome.device_names),
        ..RunInfo::default()
    };
    Ok(TraceProfile { catalog: tables.catalog, run })
}

/// The host and GPU allocators' totals over time.
struct Memory {
    device: MemorySeries,
    host: MemorySeries,
}

impl Memory {
    /// Hands every total to `sink`, before the spans (as [`ProfileSink::memory_level`] asks).
    fn emit_levels(&self, rel: impl Fn(i64) -> u64, sink: &mut dyn ProfileSink) {
        for (pool, series) in [(MemoryPool::Host, &self.host), (MemoryPool::Gpu, &self.device)] {
            for (ts, bytes) in series.levels() {
                let at = rel(ts);
                sink.memory_level(&MemoryLevel { pool, start_ns: at, end_ns: at, bytes });
            }
        }
    }
}

/// Every stage and frame call, through the nester (paths, self time), in
/// order per thread, each with its GPU and memory figures.
/// What the reader worked out for every call (indexed like the tree's calls).
struct CallFigures<'a> {
    gpu: &'a [Option<GpuMetrics>],
    frame_gpu: &'a [Option<FrameGpu>],
    frame_of: &'a [Option<u32>],
}

fn emit_calls(
    tree: &CallTree,
    figures: &CallFigures<'_>,
    memory: &Memory,
    catalog: &mut Catalog,
    rel: impl Fn(i64) -> u64,
    sink: &mut dyn ProfileSink,
) {
    let mut nester = Nester::default();
    for thread in tree.threads() {
        let mut open: Vec<usize> = Vec::new();
        let close = |i: usize, catalog: &Catalog, nester: &mut Nester, sink: &mut dyn ProfileSink| {
            let c = tree.calls[i];
            let metrics = StageMetrics {
                cpu_ns: None,
                mem: memory.host.host(c.start, c.end),
                gpu: figures.gpu[i],
                gpu_mem: memory.device.delta(c.start, c.end),
                gpu_reserved_bytes: memory.device.reserved_peak(c.start, c.end),
                process_mem: None,
                gpu_event_ns: None,
                frame_gpu: figures.frame_gpu[i],
                busy_ns: None,
            };
            nester.end(catalog, thread, c.name, rel(c.end), metrics, false, sink);
        };
        for i in tree.thread_range(thread) {
            while open.last().is_some_and(|&top| Some(top as u32) != tree.parent[i]) {
                close(open.pop().expect("checked"), catalog, &mut nester, sink);
            }
            let c = tree.calls[i];
            nester.begin(catalog, thread, c.kind, c.name, rel(c.start), true);
            nester.place_in_frame(thread, figures.frame_of[i]);
            open.push(i);
        }
        while let Some(i) = open.pop() {
            close(i, catalog, &mut nester, sink);
        }
    }
}

/// `<stage> (backward)`: derived stages beside the forward stages, one call
/// per forward call whose operators' backward launched GPU work.
fn emit_backward_views(
    tree: &CallTree,
    backward: &[BackwardOfCall],
    tables: &mut Tables,
    idle: &IdleContext,
    rel: impl Fn(i64) -> u64,
    sink: &mut dyn ProfileSink,
) {
    let mut scratch = Vec::new();
    for b in backward {
        let forward = b.forward_call as usize;
        let name = format!("{} (backward)", tables.catalog.name(tree.calls[forward].name));
        let name = tables.name(&name);
        let forward_path = stage_path(tree, forward, &mut tables.catalog);
        let parent = tables.catalog.path(forward_path).parent;
        let path = tables.catalog.intern_path(parent, name);
        let gpu = summarize(&b.activities, &tables.activities, idle, &mut scratch);
        // Its own time is its span: a derived view is never ranked.
        let view = GpuView { thread: b.thread, path, start_ns: rel(b.start), end_ns: rel(b.end), derived: true };
        sink.span(&view.span(&tables.catalog, gpu, rel(b.end).saturating_sub(rel(b.start))), &tables.catalog);
    }
}

/// GPU work launched outside every stage and frame (a communication thread,
/// a data loader): one line per launching thread and outermost operator
/// open at the launch, `(no stage) <thread>: <operator>`, from its first
/// launch to its last, so that the work is in the table and not only in a
/// warning.
fn emit_unstaged_work(
    attribution: &crate::gpu_attribution::Attribution,
    tables: &mut Tables,
    idle: &IdleContext,
    rel: impl Fn(i64) -> u64,
    sink: &mut dyn ProfileSink,
) {
    let mut by_origin: std::collections::BTreeMap<(u32, Option<u32>), Vec<u32>> = Default::default();
    for (i, call) in attribution.call_of.iter().enumerate() {
        if let (None, Some(launch)) = (call, attribution.launch(i, idle)) {
            let operator = tables.top_level_ops.at(launch.thread, launch.ts);
            by_origin.entry((launch.thread, operator)).or_default().push(i as u32);
        }
    }
    let mut scratch = Vec::new();
    for ((thread, operator), acts) in by_origin {
        let launched = acts.iter().filter_map(|&a| idle.launched(a as usize));
        let (start, end) = launched.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let label = unstaged_label(&tables.catalog, thread, operator);
        let name = tables.name(&label);
        let path = tables.catalog.intern_path(None, name);
        let gpu = summarize(&acts, &tables.activities, idle, &mut scratch);
        let view = GpuView { thread, path, start_ns: rel(start), end_ns: rel(end), derived: false };
        // Its wall time only spans the launches: no CPU time of a stage to rank.
        sink.span(&view.span(&tables.catalog, gpu, 0), &tables.catalog);
    }
}

/// A stage call the reader makes of GPU work alone (not a call in the trace).
struct GpuView {
    thread: u32,
    path: PathId,
    start_ns: u64,
    end_ns: u64,
    derived: bool,
}

impl GpuView {
    fn span(&self, catalog: &Catalog, gpu: GpuMetrics, self_ns: u64) -> Span {
        let entry = catalog.path(self.path);
        Span {
            thread: self.thread,
            kind: SpanKind::Stage,
            name: entry.name,
            path: Some(self.path),
            depth: entry.depth,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            self_ns,
            frame: None,
            metrics: StageMetrics { gpu: Some(gpu), ..StageMetrics::default() },
            flags: SpanFlags { derived: self.derived, ..SpanFlags::default() },
        }
    }
}

/// `(no stage) <thread name or id>[: <operator>]`.
fn unstaged_label(catalog: &Catalog, thread: u32, operator: Option<u32>) -> String {
    let info = catalog.thread(thread);
    let who = match info.map(|t| t.name.as_str()).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => format!("thread {}", info.map_or(0, |t| t.os_tid)),
    };
    match operator {
        Some(op) => format!("(no stage) {who}: {}", catalog.name(op)),
        None => format!("(no stage) {who}"),
    }
}

/// Every GPU activity, with the path of the stage that launched it.
fn emit_gpu_activities(
    tree: &CallTree,
    activities: &[Activity],
    attribution: &crate::gpu_attribution::Attribution,
    catalog: &mut Catalog,
    rel: impl Fn(i64) -> u64,
    sink: &mut dyn ProfileSink,
) {
    let mut paths: Vec<Option<Option<PathId>>> = vec![None; tree.calls.len()];
    for (a, call) in activities.iter().zip(&attribution.call_of) {
        let path = call.and_then(|c| {
            *paths[c as usize].get_or_insert_with(|| {
                let is_stage = tree.calls[c as usize].kind == SpanKind::Stage;
                is_stage.then(|| stage_path(tree, c as usize, catalog))
            })
        });
        let activity = GpuActivity {
            path,
            name: a.name,
            work: a.work,
            device: a.device,
            stream: a.stream,
            start_ns: rel(a.start),
            end_ns: rel(a.end),
            bytes: a.bytes,
            shape: a.shape,
        };
        sink.gpu_activity(&activity, catalog);
    }
}

/// The path of stage call `i`: its own and its enclosing stages' names (frames skipped).
fn stage_path(tree: &CallTree, i: usize, catalog: &mut Catalog) -> PathId {
    let mut names = Vec::new();
    let mut at = Some(i as u32);
    while let Some(c) = at {
        let call = tree.calls[c as usize];
        if call.kind == SpanKind::Stage {
            names.push(call.name);
        }
        at = tree.parent[c as usize];
    }
    let mut path = None;
    for name in names.into_iter().rev() {
        path = Some(catalog.intern_path(path, name));
    }
    path.expect("a stage call has a path")
}

fn warn_about(
    tables: &Tables,
    outcome: &ScanOutcome,
    tree: &CallTree,
    attribution: &crate::gpu_attribution::Attribution,
    warnings: &mut Vec<Warning>,
) {
    let before = attribution.launched_before_trace;
    let unmarked = attribution.no_correlation;
    let counted = [
        Warning::RepairedNames { count: outcome.repaired },
        Warning::MalformedEvents { count: outcome.skipped },
        Warning::UnmatchedEnds { count: tables.problems.unmatched_end },
        Warning::UnclosedBegins { count: tables.problems.unclosed_begin },
        Warning::ClippedStages { count: tree.clipped },
        Warning::RepeatedCorrelationIds { count: tables.launches.repeated_ids() as u64 },
        Warning::LaunchedBeforeTrace { count: before },
        Warning::NoCorrelationId { count: unmarked },
        Warning::NoLaunch { count: attribution.no_launch - before - unmarked },
        Warning::OutsideStages { count: attribution.outside, busy_ns: Some(attribution.outside_ns) },
    ];
    warnings.extend(counted.into_iter().filter(|w| w.count() > 0));
    warnings.extend(tables.plausibility.warnings());
    for (category, count) in &tables.unread_device_events {
        warnings.push(Warning::UnreadDeviceEvents { count: *count, category: category.clone() });
    }
}
