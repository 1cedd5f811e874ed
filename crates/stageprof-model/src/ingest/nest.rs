//! Nesting: from per-thread begin/end events to closed spans with stage
//! paths and self time.
//!
//! Every producer (the recorder's collector, the native reader, trace
//! readers) drives the same nester, so stage paths and self time are defined
//! in one place.

use std::collections::VecDeque;

use foldhash::HashMap;

use crate::wire::{Record, TaskRecord, TickScale};
use crate::{Catalog, NameId, PathId, ProfileSink, Span, SpanFlags, SpanKind, StageMetrics};

use super::gpu_join::{CallExtent, CallGpu, GpuJoin};

/// Most closed calls held back for their GPU results; past it the oldest
/// goes out without them (counted in [`Nester::released_early`]), so a GPU
/// far behind cannot make memory grow without bound.
const MAX_HELD: usize = 1 << 20;

struct Open {
    kind: SpanKind,
    name: NameId,
    path: Option<PathId>,
    depth: u32,
    start_ns: u64,
    child_ns: u64,
    sampled: bool,
    frame: Option<u32>,
    gpu: CallGpu,
}

/// Per-thread stacks of open spans.
#[derive(Default)]
pub struct Nester {
    threads: HashMap<u32, Vec<Open>>,
    /// Frames begun on each thread: the next frame's number.
    frames_begun: HashMap<u32, u32>,
    last_ns: u64,
    unmatched_ends: u64,
    /// GPU results to join to calls as they close (native profiles with GPU records).
    gpu: Option<GpuJoin>,
    /// GPU activities no call claimed.
    unclaimed_gpu: usize,
    /// Busy time of closed tasks, by the id of their (still open) parent task.
    children_busy: HashMap<u64, u64>,
    /// Closed spans, in the order they closed, held back while a live GPU
    /// join waits for the results of the first (see [`GpuJoin::live`]).
    held: VecDeque<Held>,
    /// Most spans held ([`MAX_HELD`] once a GPU join is set).
    held_limit: usize,
    released_early: u64,
}

/// A closed span held back for its GPU results.
struct Held {
    span: Span,
    gpu: Option<ClosedCall>,
}

/// What the GPU join needs of a closed call.
struct ClosedCall {
    gpu: CallGpu,
    extent: CallExtent,
    /// The stage that launched its work (`None`: a frame).
    launched_from: Option<PathId>,
}

impl Nester {
    /// A span opens on `thread`.
    pub fn begin(
        &mut self,
        catalog: &mut Catalog,
        thread: u32,
        kind: SpanKind,
        name: NameId,
        ts_ns: u64,
        sampled: bool,
    ) {
        self.last_ns = self.last_ns.max(ts_ns);
        let stack = self.threads.entry(thread).or_default();
        let parent = stack.iter().rev().find(|o| o.kind == SpanKind::Stage);
        let (path, depth) = match kind {
            SpanKind::Stage => {
                let depth = parent.map_or(0, |p| p.depth + 1);
                (Some(catalog.intern_path(parent.and_then(|p| p.path), name)), depth)
            }
            SpanKind::Frame => (None, parent.map_or(0, |p| p.depth + 1)),
        };
        let frame = match kind {
            SpanKind::Frame => {
                let next = self.frames_begun.entry(thread).or_default();
                *next += 1;
                Some(*next - 1)
            }
            SpanKind::Stage => stack.last().and_then(|o| o.frame),
        };
        let gpu = CallGpu::default();
        stack.push(Open { kind, name, path, depth, start_ns: ts_ns, child_ns: 0, sampled, frame, gpu });
    }

    /// Places the span just begun on `thread` in frame `frame`, for
    /// producers that know it better than the thread's own frames do (a
    /// trace reader, for threads that borrow the frame thread's frames).
    pub fn place_in_frame(&mut self, thread: u32, frame: Option<u32>) {
        if let Some(open) = self.threads.get_mut(&thread).and_then(|s| s.last_mut()) {
            open.frame = frame;
        }
    }

    /// A task (async span) closed: one call of the stage its ancestors'
    /// names and its own make, placed in the frame open on `thread`. Its
    /// self time is its busy time less its child tasks' busy time.
    pub fn task(
        &mut self,
        catalog: &mut Catalog,
        thread: u32,
        task: &TaskRecord,
        scale: TickScale,
        sink: &mut dyn ProfileSink,
    ) {
        let mut path = None;
        for &name in task.ancestors[..task.depth].iter().chain([&task.name]) {
            path = Some(catalog.intern_path(path, name));
        }
        let path = path.expect("the task's own name");
        let (start_ns, end_ns) = (scale.ns(task.start_ticks), scale.ns(task.end_ticks));
        let end_ns = end_ns.max(start_ns);
        self.last_ns = self.last_ns.max(end_ns);
        let children = self.children_busy.remove(&task.id).unwrap_or(0);
        if task.parent != 0 {
            *self.children_busy.entry(task.parent).or_default() += task.busy_ns;
        }
        let span = Span {
            thread,
            kind: SpanKind::Stage,
            name: task.name,
            path: Some(path),
            depth: catalog.path(path).depth,
            start_ns,
            end_ns,
            self_ns: task.busy_ns.saturating_sub(children),
            frame: self.threads.get(&thread).and_then(|s| s.last()).and_then(|o| o.frame),
            metrics: StageMetrics { busy_ns: Some(task.busy_ns), ..StageMetrics::default() },
            flags: SpanFlags::default(),
        };
        if self.held.is_empty() {
            sink.span(&span, catalog);
        } else {
            // Behind the spans held back, so that every span goes out in the order it closed.
            self.held.push_back(Held { span, gpu: None });
        }
    }

    /// Joins GPU results to calls from now on.
    pub fn join_gpu(&mut self, join: GpuJoin) {
        self.gpu = Some(join);
        self.held_limit = MAX_HELD;
    }

    /// The span just begun on `thread` launched GPU work as `instance`;
    /// `timed`: a GPU time will name it.
    pub fn link_gpu(&mut self, thread: u32, instance: u64, timed: bool) {
        if let Some(open) = self.threads.get_mut(&thread).and_then(|s| s.last_mut()) {
            open.gpu.instance = Some(instance);
            open.gpu.timed = timed;
        }
    }

    /// Hands a GPU record to a live join; `false` where no join takes it
    /// (a join that read the file first has it already: `true`).
    pub fn take_gpu(&mut self, record: &Record, thread: u32, scale: TickScale) -> bool {
        match &mut self.gpu {
            Some(join) if join.is_live() => join.take(record, thread, scale),
            Some(_) => true,
            None => false,
        }
    }

    /// With a live GPU join: hands `sink` the held spans whose GPU results
    /// are in, in the order they closed (see [`GpuJoin::advance`] for
    /// `producer_since_ns`).
    pub fn release(&mut self, catalog: &Catalog, producer_since_ns: Option<u64>, sink: &mut dyn ProfileSink) {
        let Some(join) = self.gpu.as_mut().filter(|j| j.is_live()) else { return };
        join.advance(producer_since_ns, sink);
        while let Some(front) = self.held.front() {
            let ready = front.gpu.as_ref().is_none_or(|c| join.ready(&c.gpu, &c.extent, front.span.flags.unfinished));
            if !ready && self.held.len() <= self.held_limit {
                break;
            }
            self.released_early += u64::from(!ready);
            let held = self.held.pop_front().expect("front exists");
            deliver(join, held, catalog, sink);
        }
        let (held, threads) = (&self.held, &self.threads);
        join.forget_settled(|open| {
            let held_from = held.iter().map(|h| h.span.start_ns).min();
            let open_from = threads.values().filter_map(|stack| stack.first()).map(|o| o.start_ns).min();
            held_from.into_iter().chain(open_from.filter(|_| open)).min()
        });
    }

    /// Spans a live GPU join let go before their GPU results were in.
    pub fn released_early(&self) -> u64 {
        self.released_early
    }

    /// GPU activities that no call claimed (launched outside every stage).
    pub fn unclaimed_gpu(&self) -> usize {
        self.unclaimed_gpu
    }

    /// Calls that ended on another CUDA stream than they began on: how
    /// many, and the stage of the first (`None`: a frame).
    pub fn stream_changed(&self) -> Option<(u64, Option<PathId>)> {
        self.gpu.as_ref().and_then(GpuJoin::stream_changed)
    }

    /// GPU results a live join took but could not join (levels out of time order).
    pub fn gpu_left_out(&self) -> u64 {
        self.gpu.as_ref().map_or(0, GpuJoin::levels_out_of_order)
    }

    /// The innermost span named `name` on `thread` closes. Spans opened inside
    /// it and never closed are closed with it, marked unfinished; an end that
    /// matches nothing open is counted in [`Nester::unmatched_ends`].
    #[allow(clippy::too_many_arguments)]
    pub fn end(
        &mut self,
        catalog: &Catalog,
        thread: u32,
        name: NameId,
        ts_ns: u64,
        metrics: StageMetrics,
        unwound: bool,
        sink: &mut dyn ProfileSink,
    ) {
        self.last_ns = self.last_ns.max(ts_ns);
        let stack = self.threads.entry(thread).or_default();
        let Some(at) = stack.iter().rposition(|o| o.name == name) else {
            self.unmatched_ends += 1;
            return;
        };
        let mut out = Closing { gpu: self.gpu.as_mut(), held: &mut self.held, catalog, sink };
        while stack.len() > at + 1 {
            let unfinished = SpanFlags { unfinished: true, ..SpanFlags::default() };
            close(stack, thread, ts_ns, StageMetrics::default(), unfinished, &mut out);
        }
        let flags = SpanFlags { unwound, ..SpanFlags::default() };
        close(stack, thread, ts_ns, metrics, flags, &mut out);
    }

    /// Closes everything still open at the last timestamp seen (or `end_ns`
    /// if later), marked unfinished.
    pub fn finish(&mut self, catalog: &Catalog, end_ns: Option<u64>, sink: &mut dyn ProfileSink) {
        self.close_open(catalog, end_ns, sink);
        if let Some(gpu) = &mut self.gpu {
            // Every record is in: what a held span still lacks will not come.
            gpu.settle_all(sink);
            for held in std::mem::take(&mut self.held) {
                deliver(gpu, held, catalog, sink);
            }
            self.unclaimed_gpu += gpu.finish(catalog, sink);
        }
    }

    /// Closes every span still open, at the last timestamp seen (or
    /// `end_ns` if later), marked unfinished: at the end of a profile, or
    /// where its records stop (a part of a bounded run whose next part was
    /// not kept).
    pub fn close_open(&mut self, catalog: &Catalog, end_ns: Option<u64>, sink: &mut dyn ProfileSink) {
        let end = self.last_ns.max(end_ns.unwrap_or(0));
        let mut threads: Vec<u32> = self.threads.keys().copied().collect();
        threads.sort_unstable();
        let mut out = Closing { gpu: self.gpu.as_mut(), held: &mut self.held, catalog, sink };
        for thread in threads {
            let stack = self.threads.get_mut(&thread).expect("listed above");
            while !stack.is_empty() {
                let unfinished = SpanFlags { unfinished: true, ..SpanFlags::default() };
                close(stack, thread, end, StageMetrics::default(), unfinished, &mut out);
            }
        }
    }

    /// Timestamp of the latest event seen.
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// Ends that closed nothing (their begin was lost or never written).
    pub fn unmatched_ends(&self) -> u64 {
        self.unmatched_ends
    }
}

/// Where closing spans go: to the sink, through the GPU join if there is
/// one, or held back while a live join waits for their results.
struct Closing<'a> {
    gpu: Option<&'a mut GpuJoin>,
    held: &'a mut VecDeque<Held>,
    catalog: &'a Catalog,
    sink: &'a mut dyn ProfileSink,
}

fn close(
    stack: &mut Vec<Open>,
    thread: u32,
    ts_ns: u64,
    metrics: StageMetrics,
    mut flags: SpanFlags,
    out: &mut Closing<'_>,
) {
    let mut open = stack.pop().expect("caller checked the stack");
    let end_ns = ts_ns.max(open.start_ns);
    let duration = end_ns - open.start_ns;
    flags.sampled = open.sampled;
    let span = Span {
        thread,
        kind: open.kind,
        name: open.name,
        path: open.path,
        depth: open.depth,
        start_ns: open.start_ns,
        end_ns,
        self_ns: duration.saturating_sub(open.child_ns),
        frame: open.frame,
        metrics,
        flags,
    };
    let parent = stack.last_mut();
    let call = out.gpu.is_some().then(|| ClosedCall {
        gpu: std::mem::take(&mut open.gpu),
        extent: CallExtent { thread, frame: open.kind == SpanKind::Frame, start_ns: open.start_ns, end_ns },
        launched_from: open.path.filter(|_| open.kind == SpanKind::Stage),
    });
    let held = Held { span, gpu: call };
    let inherited = match out.gpu.as_deref_mut() {
        Some(join) if join.is_live() => {
            out.held.push_back(held);
            Vec::new()
        }
        Some(join) => deliver(join, held, out.catalog, out.sink),
        None => {
            out.sink.span(&held.span, out.catalog);
            Vec::new()
        }
    };
    if let Some(parent) = parent {
        parent.child_ns = parent.child_ns.saturating_add(duration);
        parent.gpu.nested.extend(inherited);
    }
}

/// Joins a closed span's GPU results and hands it to `sink`; returns the
/// GPU activities its parent inherits.
fn deliver(join: &mut GpuJoin, held: Held, catalog: &Catalog, sink: &mut dyn ProfileSink) -> Vec<u32> {
    let Held { mut span, gpu } = held;
    let Some(call) = gpu else {
        sink.span(&span, catalog);
        return Vec::new();
    };
    let closed = join.close(call.gpu, call.extent, call.launched_from, catalog, sink);
    let metrics = &mut span.metrics;
    metrics.gpu = closed.figures;
    metrics.gpu_event_ns = closed.event_ns;
    metrics.frame_gpu = closed.frame;
    // Memory counted through stageprof's own buffers comes first; the allocator's trace otherwise.
    metrics.gpu_mem = metrics.gpu_mem.or(closed.memory);
    metrics.gpu_reserved_bytes = closed.reserved_bytes;
    sink.span(&span, catalog);
    closed.inherited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CounterSample;

    #[derive(Default)]
    struct Collect(Vec<(String, u64, u64, u32, SpanFlags)>);

    impl ProfileSink for Collect {
        fn span(&mut self, s: &Span, c: &Catalog) {
            let name = match s.path {
                Some(p) => c.path_names(p).join("/"),
                None => format!("frame:{}", c.name(s.name)),
            };
            self.0.push((name, s.duration_ns(), s.self_ns, s.depth, s.flags));
        }
        fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for (i, n) in ["a", "b", "c", "frame"].iter().enumerate() {
            c.set_name(i as u32, n);
        }
        c
    }

    #[test]
    fn paths_self_time_and_transparent_frames() {
        let mut c = catalog();
        let mut n = Nester::default();
        let mut out = Collect::default();
        let m = StageMetrics::default();
        n.begin(&mut c, 1, SpanKind::Frame, 3, 0, true);
        n.begin(&mut c, 1, SpanKind::Stage, 0, 10, false);
        n.begin(&mut c, 1, SpanKind::Stage, 1, 20, false);
        n.end(&c, 1, 1, 50, m, false, &mut out);
        n.begin(&mut c, 1, SpanKind::Stage, 1, 60, false);
        n.end(&c, 1, 1, 70, m, false, &mut out);
        n.end(&c, 1, 0, 100, m, false, &mut out);
        n.end(&c, 1, 3, 110, m, false, &mut out);
        let f = SpanFlags::default();
        assert_eq!(
            out.0,
            vec![
                ("a/b".into(), 30, 30, 1, f),
                ("a/b".into(), 10, 10, 1, f),
                ("a".into(), 90, 50, 0, f),
                ("frame:frame".into(), 110, 20, 0, SpanFlags { sampled: true, ..f }),
            ]
        );
    }

    /// A GPU that never answers: past the limit, the oldest held calls go
    /// out without GPU figures, in order, and are counted.
    #[test]
    fn held_calls_past_the_limit_go_out_counted() {
        let mut c = catalog();
        let mut n = Nester::default();
        n.join_gpu(GpuJoin::live());
        n.held_limit = 4;
        let mut out = Collect::default();
        for i in 0..10u64 {
            n.begin(&mut c, 1, SpanKind::Stage, 0, 10 * i, false);
            n.link_gpu(1, i + 1, true);
            n.end(&c, 1, 0, 10 * i + 5, StageMetrics::default(), false, &mut out);
        }
        n.release(&c, None, &mut out);
        assert_eq!((out.0.len(), n.released_early()), (6, 6));
        assert_eq!(n.held.len(), 4);
        n.finish(&c, None, &mut out);
        assert_eq!((out.0.len(), n.released_early()), (10, 6), "the rest go out at finish, not early");
    }

    #[test]
    fn unclosed_children_close_with_their_parent_and_at_finish() {
        let mut c = catalog();
        let mut n = Nester::default();
        let mut out = Collect::default();
        let m = StageMetrics::default();
        n.begin(&mut c, 1, SpanKind::Stage, 0, 0, false);
        n.begin(&mut c, 1, SpanKind::Stage, 1, 10, false);
        n.end(&c, 1, 0, 40, m, true, &mut out);
        n.end(&c, 1, 2, 45, m, false, &mut out);
        n.begin(&mut c, 2, SpanKind::Stage, 2, 50, false);
        n.finish(&c, Some(80), &mut out);
        let unfinished = SpanFlags { unfinished: true, ..SpanFlags::default() };
        assert_eq!(
            out.0,
            vec![
                ("a/b".into(), 30, 30, 1, unfinished),
                ("a".into(), 40, 10, 0, SpanFlags { unwound: true, ..SpanFlags::default() }),
                ("c".into(), 30, 30, 0, unfinished),
            ]
        );
        assert_eq!(n.unmatched_ends(), 1);
    }
}
