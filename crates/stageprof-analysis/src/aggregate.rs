//! Folding spans and counter samples into per-stage statistics.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt};

use stageprof_model::{
    Catalog, CounterSample, FrameGpu, GpuActivity, GpuMetrics, GpuWork, LaunchShape, MemoryLevel, NameId, PathId,
    ProfileSink, QueueEvent, RunInfo, Span, SpanKind,
};

use crate::memory_timeline::MemoryTracker;
use crate::queues::QueueTracker;
use crate::stats::DurationAcc;
use crate::summary::{
    Bottleneck, CounterStats, FrameRecord, FrameStats, KernelStats, PerCall, PerFrame, StageStats, Summary, ThreadWall,
    MAX_FRAMES_LISTED,
};
use crate::timeline::{thread_label, TimelineBuilder};

/// Kernels listed per stage.
const TOP_KERNELS: usize = 5;

/// Frames whose per-stage totals are kept (each stage's cost per frame is
/// compared over them); memory is 12 bytes a frame for each stage.
pub const FRAMES_PER_STAGE: usize = crate::stats::EXACT_SAMPLES;

#[derive(Default)]
struct StageAcc {
    wall: DurationAcc,
    /// Per call: thread CPU time and GPU busy time, where recorded.
    cpu_call: DurationAcc,
    gpu_call: DurationAcc,
    self_ns: u64,
    cpu_ns: Option<u64>,
    mem_peak: Option<u64>,
    mem_net: Option<i64>,
    alloc_bytes: Option<u64>,
    allocs: Option<u64>,
    /// Wall time by the thread the calls ran on.
    wall_by_thread: BTreeMap<u32, u64>,
    unwound: u64,
    unfinished: u64,
    gpu: Option<GpuMetrics>,
    gpu_event_ns: Option<u64>,
    gpu_mem_peak: Option<u64>,
    gpu_mem_net: Option<i64>,
    gpu_mem_calls: u64,
    /// Calls whose GPU work was traced.
    gpu_calls: u64,
    gpu_reserved: Option<u64>,
    process_mem_peak: Option<u64>,
    process_mem_net: Option<i64>,
    busy_ns: Option<u64>,
    derived: bool,
    /// Per frame (by number, the first [`FRAMES_PER_STAGE`]): wall time and calls.
    per_frame: Vec<(u64, u32)>,
    /// Kernels the stage launched itself: name -> (count, total ns).
    /// Per kernel and launch shape: calls and total time.
    kernels: HashMap<(NameId, Option<LaunchShape>), (u64, u64)>,
}

struct CounterAcc {
    samples: u64,
    min: f64,
    max: f64,
    sum: f64,
    last: f64,
}

/// Per-stage, per-frame and per-counter aggregates; memory grows with the
/// number of distinct stages, not with the number of calls.
#[derive(Default)]
pub struct Aggregator {
    stages: Vec<StageAcc>,
    frames: DurationAcc,
    frames_sampled: u64,
    /// Frames whose GPU work was traced.
    frames_gpu_traced: u64,
    frame_gpu_span: DurationAcc,
    frame_gpu: Option<FrameGpu>,
    frame_list: Vec<FrameRecord>,
    /// Whether each frame (by number, the first [`FRAMES_PER_STAGE`]) had its stages recorded.
    frame_sampled: Vec<bool>,
    counters: HashMap<NameId, CounterAcc>,
    threads: BTreeSet<u32>,
    first_ns: Option<u64>,
    last_ns: u64,
    memory: MemoryTracker,
    timeline: TimelineBuilder,
    queues: QueueTracker,
}

/// Sums that saturate: figures read from files can be absurd, and must not wrap.
trait SaturatingAdd: Copy {
    fn plus(self, other: Self) -> Self;
}

impl SaturatingAdd for u64 {
    fn plus(self, other: Self) -> Self {
        self.saturating_add(other)
    }
}

impl SaturatingAdd for i64 {
    fn plus(self, other: Self) -> Self {
        self.saturating_add(other)
    }
}

fn add<T: SaturatingAdd>(acc: &mut Option<T>, v: T) {
    *acc = Some(acc.map_or(v, |a| a.plus(v)));
}

impl ProfileSink for Aggregator {
    fn span(&mut self, span: &Span, _: &Catalog) {
        self.memory.span(span);
        self.threads.insert(span.thread);
        self.first_ns = Some(self.first_ns.map_or(span.start_ns, |f| f.min(span.start_ns)));
        self.last_ns = self.last_ns.max(span.end_ns);
        let Some(path) = span.path.filter(|_| span.kind == SpanKind::Stage) else {
            self.frames.record(span.duration_ns());
            self.frames_sampled += u64::from(span.flags.sampled);
            self.frames_gpu_traced += u64::from(span.metrics.gpu.is_some());
            if let Some(f) = span.frame.map(|f| f as usize).filter(|&f| f < FRAMES_PER_STAGE) {
                if self.frame_sampled.len() <= f {
                    self.frame_sampled.resize(f + 1, false);
                }
                self.frame_sampled[f] = span.flags.sampled;
            }
            if let Some(g) = &span.metrics.frame_gpu {
                self.frame_gpu_span.record(g.span_ns);
                match &mut self.frame_gpu {
                    Some(total) => total.add(g),
                    None => self.frame_gpu = Some(*g),
                }
            }
            if self.frame_list.len() < MAX_FRAMES_LISTED {
                self.frame_list.push(FrameRecord {
                    start_ns: span.start_ns,
                    duration_ns: span.duration_ns(),
                    sampled: span.flags.sampled,
                    gpu: span.metrics.frame_gpu,
                });
            }
            return;
        };
        self.timeline.stage(span);
        let acc = self.stage_mut(path);
        acc.wall.record(span.duration_ns());
        acc.self_ns = acc.self_ns.saturating_add(span.self_ns);
        let on_thread = acc.wall_by_thread.entry(span.thread).or_default();
        *on_thread = on_thread.saturating_add(span.duration_ns());
        acc.unwound += u64::from(span.flags.unwound);
        acc.unfinished += u64::from(span.flags.unfinished);
        acc.derived |= span.flags.derived;
        if let Some(f) = span.frame.map(|f| f as usize).filter(|&f| f < FRAMES_PER_STAGE) {
            if acc.per_frame.len() <= f {
                acc.per_frame.resize(f + 1, (0, 0));
            }
            let (ns, calls) = &mut acc.per_frame[f];
            *ns = ns.saturating_add(span.duration_ns());
            *calls = calls.saturating_add(1);
        }
        if let Some(cpu) = span.metrics.cpu_ns {
            add(&mut acc.cpu_ns, cpu);
            acc.cpu_call.record(cpu);
        }
        if let Some(mem) = span.metrics.mem {
            acc.mem_peak = Some(acc.mem_peak.unwrap_or(0).max(mem.peak_bytes));
            add(&mut acc.mem_net, mem.net_bytes);
            add(&mut acc.alloc_bytes, mem.alloc_bytes);
            add(&mut acc.allocs, mem.allocs);
        }
        if let Some(g) = &span.metrics.gpu {
            acc.gpu.get_or_insert_with(GpuMetrics::default).add(g);
            acc.gpu_calls += 1;
            // Per call: over the calls that launched work (a traced call may have launched none).
            if g.launched() > 0 {
                acc.gpu_call.record(g.busy_ns);
            }
        }
        if let Some(ns) = span.metrics.gpu_event_ns {
            add(&mut acc.gpu_event_ns, ns);
        }
        if let Some(ns) = span.metrics.busy_ns {
            add(&mut acc.busy_ns, ns);
        }
        if let Some(m) = span.metrics.gpu_mem {
            acc.gpu_mem_peak = Some(acc.gpu_mem_peak.unwrap_or(0).max(m.peak_bytes));
            add(&mut acc.gpu_mem_net, m.net_bytes);
            acc.gpu_mem_calls += 1;
        }
        if let Some(r) = span.metrics.gpu_reserved_bytes {
            acc.gpu_reserved = Some(acc.gpu_reserved.unwrap_or(0).max(r));
        }
        if let Some(m) = span.metrics.process_mem {
            acc.process_mem_peak = Some(acc.process_mem_peak.unwrap_or(0).max(m.peak_bytes));
            add(&mut acc.process_mem_net, m.net_bytes);
        }
    }

    fn gpu_activity(&mut self, a: &GpuActivity, _: &Catalog) {
        self.timeline.gpu(a);
        let (Some(path), GpuWork::Kernel) = (a.path, a.work) else { return };
        let k = self.stage_mut(path).kernels.entry((a.name, a.shape)).or_insert((0, 0));
        k.0 += 1;
        k.1 = k.1.saturating_add(a.end_ns.saturating_sub(a.start_ns));
    }

    fn memory_level(&mut self, level: &MemoryLevel) {
        self.memory.level(level);
    }

    fn queue(&mut self, event: &QueueEvent, _: &Catalog) {
        self.queues.event(event);
    }

    fn counter(&mut self, sample: &CounterSample, _: &Catalog) {
        let v = sample.value;
        let acc =
            self.counters.entry(sample.name).or_insert(CounterAcc { samples: 0, min: v, max: v, sum: 0.0, last: v });
        acc.samples += 1;
        acc.min = acc.min.min(v);
        acc.max = acc.max.max(v);
        acc.sum += v;
        acc.last = v;
    }
}

impl Aggregator {
    fn stage_mut(&mut self, path: PathId) -> &mut StageAcc {
        let i = path.0 as usize;
        if self.stages.len() <= i {
            self.stages.resize_with(i + 1, StageAcc::default);
        }
        &mut self.stages[i]
    }

    /// The summary of everything seen so far, with the top `top` bottlenecks.
    pub fn summary(&self, catalog: &Catalog, mut run: RunInfo, top: usize) -> Summary {
        if run.duration_ns == 0 {
            run.duration_ns = self.last_ns - self.first_ns.unwrap_or(self.last_ns);
        }
        let order = self.tree_order(catalog);
        let mut stages: Vec<StageStats> = order.iter().map(|&p| self.stage_stats(catalog, p)).collect();
        set_self_shares(&mut stages);
        let mut counters: Vec<CounterStats> = self
            .counters
            .iter()
            .map(|(&name, c)| CounterStats {
                name: catalog.name(name).to_owned(),
                samples: c.samples,
                min: c.min,
                max: c.max,
                mean: c.sum / c.samples as f64,
                last: c.last,
            })
            .collect();
        counters.sort_by(|a, b| a.name.cmp(&b.name));
        let queues = self.queues.stats(catalog);
        run.warnings.extend(self.queues.warnings(catalog));
        Summary {
            memory: self.memory.timelines(&order),
            timeline: self.timeline.timeline(catalog),
            bottlenecks: bottlenecks(&stages, top, |s| Some(s.self_ns)),
            gpu_bottlenecks: bottlenecks(&stages, top, |s| s.gpu.map(|g| g.self_busy_ns)),
            stages,
            frames: FrameStats {
                count: self.frames.count(),
                sampled: self.frames_sampled,
                gpu_traced: (self.frames_gpu_traced > 0).then_some(self.frames_gpu_traced),
                duration: self.frames.stats(),
                durations: self.frames.samples().values,
                gpu_span: (self.frame_gpu_span.count() > 0).then(|| self.frame_gpu_span.stats()),
                gpu: self.frame_gpu,
                each: {
                    let mut each = self.frame_list.clone();
                    each.sort_by_key(|f| f.start_ns);
                    each
                },
            },
            counters,
            pipeline: self.queues.pipeline(catalog, &queues),
            queues,
            threads: self.threads.len() as u32,
            run,
        }
    }

    fn stage_stats(&self, catalog: &Catalog, path: PathId) -> StageStats {
        let acc = &self.stages[path.0 as usize];
        let entry = catalog.path(path);
        let call = acc.wall.stats();
        StageStats {
            name: catalog.name(entry.name).to_owned(),
            path: catalog.path_names(path).into_iter().map(str::to_owned).collect(),
            depth: entry.depth,
            calls: call.count,
            wall_ns: call.total_ns,
            self_ns: acc.self_ns,
            self_pct: None,
            call,
            per_call: PerCall {
                wall: acc.wall.samples(),
                cpu: (acc.cpu_call.count() > 0).then(|| acc.cpu_call.samples()),
                gpu: (acc.gpu_call.count() > 0).then(|| acc.gpu_call.samples()),
            },
            cpu_ns: acc.cpu_ns,
            host_mem_peak_bytes: acc.mem_peak,
            host_mem_net_bytes: acc.mem_net,
            alloc_bytes: acc.alloc_bytes,
            allocs: acc.allocs,
            threads: acc.wall_by_thread.len() as u32,
            wall_by_thread: acc
                .wall_by_thread
                .iter()
                .map(|(&thread, &wall_ns)| ThreadWall { thread: thread_label(thread, catalog), wall_ns })
                .collect(),
            unwound: acc.unwound,
            unfinished: acc.unfinished,
            gpu: acc.gpu,
            gpu_traced_calls: acc.gpu.map(|_| acc.gpu_calls),
            gpu_event_ns: acc.gpu_event_ns,
            gpu_mem_peak_bytes: acc.gpu_mem_peak,
            gpu_mem_net_bytes: acc.gpu_mem_net,
            gpu_mem_calls: acc.gpu_mem_peak.map(|_| acc.gpu_mem_calls),
            gpu_reserved_bytes: acc.gpu_reserved,
            process_mem_peak_bytes: acc.process_mem_peak,
            process_mem_net_bytes: acc.process_mem_net,
            derived: acc.derived,
            busy_ns: acc.busy_ns,
            top_kernels: top_kernels(catalog, &acc.kernels),
            per_frame: self.per_frame(acc),
        }
    }

    /// A stage's wall time in each sampled frame (0 where it was not
    /// called), over the first [`FRAMES_PER_STAGE`] frames; `None` when none
    /// of its calls ran in a frame.
    fn per_frame(&self, acc: &StageAcc) -> Option<PerFrame> {
        if acc.per_frame.is_empty() {
            return None;
        }
        let mut time = DurationAcc::default();
        let mut calls = 0;
        for f in (0..self.frame_sampled.len()).filter(|&f| self.frame_sampled[f]) {
            let (ns, n) = acc.per_frame.get(f).copied().unwrap_or_default();
            time.record(ns);
            calls += u64::from(n);
        }
        (time.count() > 0).then(|| PerFrame { time: time.samples(), calls })
    }

    /// Paths with calls, each parent before its children, siblings by wall time descending.
    fn tree_order(&self, catalog: &Catalog) -> Vec<PathId> {
        let called = |i: usize| self.stages.get(i).is_some_and(|a| a.wall.count() > 0);
        let mut children: HashMap<Option<PathId>, Vec<PathId>> = HashMap::new();
        for i in (0..catalog.path_count()).filter(|&i| called(i)) {
            let id = PathId(i as u32);
            // A called stage whose parent was never closed hangs from the nearest called ancestor.
            let mut parent = catalog.path(id).parent;
            while let Some(p) = parent.filter(|p| !called(p.0 as usize)) {
                parent = catalog.path(p).parent;
            }
            children.entry(parent).or_default().push(id);
        }
        let wall = |p: &PathId| self.stages[p.0 as usize].wall.stats().total_ns;
        for list in children.values_mut() {
            list.sort_by_key(|p| (std::cmp::Reverse(wall(p)), p.0));
        }
        let mut order = Vec::new();
        let mut todo: Vec<PathId> = children.get(&None).cloned().unwrap_or_default();
        todo.reverse();
        while let Some(p) = todo.pop() {
            order.push(p);
            if let Some(kids) = children.get(&Some(p)) {
                todo.extend(kids.iter().rev());
            }
        }
        order
    }
}

fn top_kernels(catalog: &Catalog, kernels: &HashMap<(NameId, Option<LaunchShape>), (u64, u64)>) -> Vec<KernelStats> {
    let mut all: Vec<KernelStats> = kernels
        .iter()
        .map(|(&(name, shape), &(calls, total_ns))| KernelStats {
            name: catalog.name(name).to_owned(),
            shape,
            calls,
            total_ns,
        })
        .collect();
    all.sort_by(KernelStats::by_time);
    all.truncate(TOP_KERNELS);
    all
}

/// Each stage's share of all stages' own time; derived stages (views of
/// other stages' work) neither count nor get a share.
fn set_self_shares(stages: &mut [StageStats]) {
    let total: u64 = stages.iter().filter(|s| !s.derived).map(|s| s.self_ns).fold(0, u64::saturating_add);
    for s in stages.iter_mut().filter(|s| !s.derived) {
        s.self_pct = Some(100.0 * s.self_ns as f64 / total.max(1) as f64);
    }
}

/// The `top` stages by a time measure of their own (not their nested
/// stages'), so that a parent does not outrank the children doing the work.
fn bottlenecks(stages: &[StageStats], top: usize, own_ns: impl Fn(&StageStats) -> Option<u64>) -> Vec<Bottleneck> {
    let time = |i: usize| if stages[i].derived { 0 } else { own_ns(&stages[i]).unwrap_or(0) };
    let total: u64 = (0..stages.len()).map(time).fold(0, u64::saturating_add);
    let mut ranked: Vec<usize> = (0..stages.len()).filter(|&i| time(i) > 0).collect();
    ranked.sort_by_key(|&i| (std::cmp::Reverse(time(i)), i));
    ranked
        .into_iter()
        .take(top)
        .enumerate()
        .map(|(rank, i)| Bottleneck {
            rank: rank as u32 + 1,
            stage: i,
            self_ns: time(i),
            share_pct: 100.0 * time(i) as f64 / total.max(1) as f64,
            host_mem_peak_bytes: stages[i].host_mem_peak_bytes,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_model::{HostMem, SpanFlags, StageMetrics};

    fn span(path: PathId, depth: u32, start: u64, end: u64, self_ns: u64, peak: u64) -> Span {
        Span {
            thread: 1,
            kind: SpanKind::Stage,
            name: 0,
            path: Some(path),
            depth,
            start_ns: start,
            end_ns: end,
            self_ns,
            frame: None,
            metrics: StageMetrics {
                cpu_ns: Some(end - start),
                mem: Some(HostMem { alloc_bytes: peak, allocs: 1, peak_bytes: peak, net_bytes: 8 }),
                ..StageMetrics::default()
            },
            flags: SpanFlags::default(),
        }
    }

    #[test]
    fn totals_tree_order_and_bottlenecks() {
        let mut c = Catalog::default();
        for (i, n) in ["load", "depth", "warp"].iter().enumerate() {
            c.set_name(i as u32, n);
        }
        let load = c.intern_path(None, 0);
        let depth = c.intern_path(None, 1);
        let warp = c.intern_path(Some(depth), 2);
        let mut agg = Aggregator::default();
        agg.span(&span(load, 0, 0, 10, 10, 100), &c);
        agg.span(&span(warp, 1, 10, 40, 30, 50), &c);
        agg.span(&span(depth, 0, 10, 100, 60, 500), &c);
        agg.span(&span(load, 0, 100, 120, 20, 300), &c);
        let s = agg.summary(&c, RunInfo::default(), 2);
        let names: Vec<_> = s.stages.iter().map(|s| s.path.join("/")).collect();
        assert_eq!(names, ["depth", "depth/warp", "load"]);
        let load = &s.stages[2];
        assert_eq!((load.calls, load.wall_ns, load.self_ns, load.cpu_ns), (2, 30, 30, Some(30)));
        assert_eq!((load.host_mem_peak_bytes, load.host_mem_net_bytes, load.allocs), (Some(300), Some(16), Some(2)));
        assert_eq!(s.run.duration_ns, 120);
        assert_eq!(s.bottlenecks.len(), 2);
        assert_eq!((s.bottlenecks[0].stage, s.bottlenecks[0].self_ns), (0, 60));
        assert_eq!((s.bottlenecks[1].stage, s.bottlenecks[1].share_pct), (1, 25.0));
    }
}
