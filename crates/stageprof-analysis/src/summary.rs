//! The summary: every number a report shows, in one plain value.
//!
//! Renderers (terminal table, JSON, HTML) draw from this and compute
//! nothing themselves. docs/summary-schema.md documents its JSON form.

use stageprof_model::{FrameGpu, GpuMetrics, LaunchShape, RunInfo};

use crate::memory_timeline::MemoryTimeline;
use crate::stats::{DurationStats, Samples};
use crate::timeline::Timeline;

/// Version of the summary's JSON form; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A stage's wall time on one thread.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadWall {
    /// The thread's name, or `thread <os id>`.
    pub thread: String,
    /// The stage's calls on that thread, summed.
    pub wall_ns: u64,
}

/// Totals and per-call statistics of one stage (one path in the stage tree).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageStats {
    /// The stage's own name.
    pub name: String,
    /// Names from the outermost stage down to this one.
    pub path: Vec<String>,
    /// Stages above it ([`crate::figures::DEPTH`]).
    pub depth: u32,
    /// [`crate::figures::CALLS`].
    pub calls: u64,
    /// Inclusive wall time over all calls.
    pub wall_ns: u64,
    /// Wall time not spent in nested stages, over all calls.
    pub self_ns: u64,
    /// `self_ns` as a share of all stages' self time, in percent; `None`
    /// for derived stages (views of other stages' work).
    pub self_pct: Option<f64>,
    /// Per-call wall time statistics.
    pub call: DurationStats,
    /// Per-call wall, CPU and GPU busy time, with the values while few enough to keep.
    pub per_call: PerCall,
    /// [`crate::figures::CPU`].
    pub cpu_ns: Option<u64>,
    /// Largest per-call peak of live host bytes above the call's start.
    pub host_mem_peak_bytes: Option<u64>,
    /// Live host bytes retained, summed over calls.
    pub host_mem_net_bytes: Option<i64>,
    /// [`crate::figures::ALLOC_BYTES`].
    pub alloc_bytes: Option<u64>,
    /// [`crate::figures::ALLOCS`].
    pub allocs: Option<u64>,
    /// [`crate::figures::THREADS`].
    pub threads: u32,
    /// `wall_ns` split by the thread the calls ran on, in thread order.
    pub wall_by_thread: Vec<ThreadWall>,
    /// Calls left by a panic.
    pub unwound: u64,
    /// Calls still open when recording stopped.
    pub unfinished: u64,
    /// GPU work launched by the stage (nested stages included), summed over the calls in `gpu_traced_calls`.
    pub gpu: Option<GpuMetrics>,
    /// Calls whose GPU work was traced: all, unless kernel tracing ran in some frames only.
    pub gpu_traced_calls: Option<u64>,
    /// GPU time between CUDA events at the calls' begin and end on their
    /// stream, summed over calls (stageprof's `cuda` feature).
    pub gpu_event_ns: Option<u64>,
    /// Largest per-call peak of the GPU allocator's bytes above the call's start.
    pub gpu_mem_peak_bytes: Option<u64>,
    /// GPU allocator bytes at the end minus at the start, summed over calls.
    pub gpu_mem_net_bytes: Option<i64>,
    /// Calls whose GPU memory was measured: all, unless the allocator's trace covered only some frames.
    pub gpu_mem_calls: Option<u64>,
    /// The most bytes the GPU allocator held from the driver during any call (its own trace).
    pub gpu_reserved_bytes: Option<u64>,
    /// Largest per-call peak of all threads' heap above its value at the call's
    /// start (stages of the thread that drives the pipeline).
    pub process_mem_peak_bytes: Option<u64>,
    /// All threads' heap at the end minus at the start, summed over calls.
    pub process_mem_net_bytes: Option<i64>,
    /// A view of other stages' work (such as `<stage> (backward)`), not ranked as a bottleneck.
    pub derived: bool,
    /// For tasks (async spans): time their calls were entered (polled),
    /// summed; the rest of `wall_ns` they waited.
    pub busy_ns: Option<u64>,
    /// The kernels the stage launched itself, longest total first (at most 5).
    pub top_kernels: Vec<KernelStats>,
    /// What the stage cost each frame, where its calls ran in frames.
    pub per_frame: Option<PerFrame>,
}

impl StageStats {
    /// Whether the stage launched GPU work: `None` where its work was not
    /// traced, `Some(false)` where kernel tracing saw it launch nothing.
    pub fn launched_gpu_work(&self) -> Option<bool> {
        self.gpu.map(|g| g.launched() > 0)
    }

    /// The GPU work the stage launched, where it was traced and there was some.
    pub fn gpu_work(&self) -> Option<&GpuMetrics> {
        self.gpu.as_ref().filter(|_| self.launched_gpu_work() == Some(true))
    }

    /// For tasks: wall time not entered (waiting), summed over calls.
    pub fn idle_ns(&self) -> Option<u64> {
        self.busy_ns.map(|b| self.wall_ns.saturating_sub(b))
    }

    /// Host memory peak: all threads' heap where measured (the driving
    /// thread's stages), else its own thread's.
    pub fn mem_peak_bytes(&self) -> Option<u64> {
        self.process_mem_peak_bytes.or(self.host_mem_peak_bytes)
    }

    /// Host memory handed on, measured as [`StageStats::mem_peak_bytes`] is.
    pub fn mem_net_bytes(&self) -> Option<i64> {
        if self.process_mem_peak_bytes.is_some() {
            self.process_mem_net_bytes
        } else {
            self.host_mem_net_bytes
        }
    }
}

/// A stage's cost per frame: one sample per frame (the first
/// [`crate::aggregate::FRAMES_PER_STAGE`] frames), its calls' wall time in that frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerFrame {
    /// The stage's wall time in each frame.
    pub time: Samples,
    /// The stage's calls in those frames.
    pub calls: u64,
}

impl PerFrame {
    /// Mean calls a frame.
    pub fn calls_per_frame(&self) -> f64 {
        self.calls as f64 / self.time.stats.count.max(1) as f64
    }

    /// Whether the stage ran exactly once in every frame: then the frames are its calls.
    pub fn once_a_frame(&self) -> bool {
        self.calls == self.time.stats.count
    }

    /// Pools two runs' figures (ranks of one job).
    pub fn pool(&self, other: &PerFrame) -> PerFrame {
        PerFrame { time: self.time.pool(&other.time), calls: self.calls + other.calls }
    }
}

/// Per-call samples of a stage's time measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerCall {
    /// Wall time per call.
    pub wall: Samples,
    /// Thread CPU time per call, where measured.
    pub cpu: Option<Samples>,
    /// GPU busy time of the work each call launched.
    pub gpu: Option<Samples>,
}

/// A kernel (by name and launch shape) within a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelStats {
    /// The kernel's (demangled) name.
    pub name: String,
    /// Grid and block, when the tracer gave them; the same kernel launched
    /// with another shape is another entry.
    pub shape: Option<LaunchShape>,
    /// Launches.
    pub calls: u64,
    /// Their device time, summed.
    pub total_ns: u64,
}

impl KernelStats {
    /// Most time first; ties by name, then shape.
    pub fn by_time(a: &KernelStats, b: &KernelStats) -> std::cmp::Ordering {
        b.total_ns.cmp(&a.total_ns).then_with(|| a.name.cmp(&b.name)).then_with(|| a.shape.cmp(&b.shape))
    }
}

/// Frame (pipeline iteration) statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameStats {
    /// Frames, sampled or not.
    pub count: u64,
    /// Frames whose stages were recorded.
    pub sampled: u64,
    /// Frames whose GPU work (kernels, copies, memsets) was traced; `None` where none was.
    pub gpu_traced: Option<u64>,
    /// Frame duration statistics over all frames.
    pub duration: DurationStats,
    /// Every frame's duration, while there are at most [`crate::stats::EXACT_SAMPLES`] frames.
    pub durations: Vec<u64>,
    /// Per-frame GPU window length (first start to last end of the frame's
    /// GPU work, windows never overlapping).
    pub gpu_span: Option<DurationStats>,
    /// The frames' GPU figures summed: window, device busy, own busy, idle by cause.
    pub gpu: Option<FrameGpu>,
    /// Each frame, in time order (the first 100,000).
    pub each: Vec<FrameRecord>,
}

/// Frames listed one by one at most; beyond, only their statistics.
pub(crate) const MAX_FRAMES_LISTED: usize = 100_000;

/// One frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRecord {
    /// Start, since the profile's start.
    pub start_ns: u64,
    /// Its wall time.
    pub duration_ns: u64,
    /// Whether its stages were recorded.
    pub sampled: bool,
    /// Its GPU window and what filled it, with GPU data.
    pub gpu: Option<FrameGpu>,
}

/// Samples of one counter.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterStats {
    /// The counter's name.
    pub name: String,
    /// Samples taken.
    pub samples: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub mean: f64,
    /// The last value.
    pub last: f64,
}

/// The stage that limits a pipeline's throughput, with the evidence.
#[derive(Clone, Copy, Debug)]
pub struct LimitingStage<'a> {
    /// The stage (a thread).
    pub stage: &'a crate::PipelineStage,
    /// The most any of its input queues was full, 0 to 100 (bounded queues).
    pub inputs_full_pct: Option<f64>,
    /// The most any of its output queues was empty, 0 to 100.
    pub outputs_empty_pct: Option<f64>,
}

/// A stage ranked among the top consumers of its own (not nested) time.
#[derive(Clone, Debug, PartialEq)]
pub struct Bottleneck {
    /// 1 for the largest.
    pub rank: u32,
    /// Index into [`Summary::stages`].
    pub stage: usize,
    /// The time it is ranked by: CPU self time, or own GPU busy time.
    pub self_ns: u64,
    /// Share of all stages' time of that kind, in percent.
    pub share_pct: f64,
    /// The stage's host memory peak, where measured.
    pub host_mem_peak_bytes: Option<u64>,
}

/// The least host memory peak named as the run's largest: below it, a
/// stage's allocations are the runtime's bookkeeping (a PyTorch trace's CPU
/// allocations of a few bytes), not the pipeline's data.
pub const HOST_MEM_NOTABLE_BYTES: u64 = 64 << 10;

/// Everything a report shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// What is known of the run as a whole.
    pub run: RunInfo,
    /// Stages in tree order: each parent before its children, siblings by wall time.
    pub stages: Vec<StageStats>,
    /// Frame statistics.
    pub frames: FrameStats,
    /// Counters, by name.
    pub counters: Vec<CounterStats>,
    /// Instrumented queues, by name.
    pub queues: Vec<crate::QueueStats>,
    /// The stages (threads) the queues join, and the one limiting throughput; `None` without queues.
    pub pipeline: Option<crate::Pipeline>,
    /// Top stages by CPU self time.
    pub bottlenecks: Vec<Bottleneck>,
    /// Top stages by GPU busy time of their own launches (empty without GPU data).
    pub gpu_bottlenecks: Vec<Bottleneck>,
    /// Number of distinct threads with events.
    pub threads: u32,
    /// Each allocator's level over time, with its peak.
    pub memory: Vec<MemoryTimeline>,
    /// The longest calls and GPU work of each thread and stream, to draw.
    pub timeline: Timeline,
}

impl Summary {
    /// The stage whose calls held the most host memory at their peak: by
    /// all threads' heap where measured (the driving thread's stages), else
    /// by its own thread's. Ties go to the outermost stage.
    /// A peak under [`HOST_MEM_NOTABLE_BYTES`] is not named.
    pub fn peak_stage_host_mem(&self) -> Option<(usize, u64)> {
        self.peak_stage(StageStats::mem_peak_bytes).filter(|&(_, b)| b >= HOST_MEM_NOTABLE_BYTES)
    }

    /// The pipeline's limiting stage with its inputs' time full and outputs' time empty.
    pub fn limiting_stage(&self) -> Option<LimitingStage<'_>> {
        let pipeline = self.pipeline.as_ref()?;
        let stage = &pipeline.stages[pipeline.limiting_stage?];
        let share = |names: &[String], of: fn(&crate::QueueStats) -> Option<f64>| {
            let found = self.queues.iter().filter(|q| names.contains(&q.name)).filter_map(of);
            found.fold(None, |most: Option<f64>, v| Some(most.map_or(v, |m| m.max(v))))
        };
        Some(LimitingStage {
            stage,
            inputs_full_pct: share(&stage.inputs, |q| q.full_pct),
            outputs_empty_pct: share(&stage.outputs, |q| Some(q.empty_pct)),
        })
    }

    /// The stage whose calls held the most GPU allocator bytes at their peak.
    pub fn peak_stage_gpu_mem(&self) -> Option<(usize, u64)> {
        self.peak_stage(|s| s.gpu_mem_peak_bytes)
    }

    fn peak_stage(&self, peak: impl Fn(&StageStats) -> Option<u64>) -> Option<(usize, u64)> {
        self.stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, peak(s)?)))
            .max_by_key(|&(i, b)| (b, std::cmp::Reverse(i)))
    }
}

impl Summary {
    /// GPU figures of the whole run: the outermost stages' work summed
    /// (each stage's figures include its nested stages'), `None` without GPU data.
    pub fn gpu_total(&self) -> Option<GpuMetrics> {
        let mut total = None;
        for g in self.stages.iter().filter(|s| s.depth == 0 && !s.derived).filter_map(|s| s.gpu.as_ref()) {
            total.get_or_insert_with(GpuMetrics::default).add(g);
        }
        total
    }

    /// Device busy time over the frames' GPU windows, or the outermost
    /// stages' GPU busy time over the run where there are no frames.
    pub fn gpu_busy_pct(&self) -> Option<f64> {
        self.frames
            .gpu_busy_pct()
            .or_else(|| self.gpu_total().map(|g| 100.0 * g.busy_ns as f64 / self.run.duration_ns.max(1) as f64))
    }

    /// Kernels by name over all stages, longest total first. Each stage
    /// lists only the kernels it launched itself, so nothing is counted twice.
    pub fn kernel_totals(&self) -> Vec<KernelStats> {
        let mut by_kernel: foldhash::HashMap<(&str, Option<LaunchShape>), KernelStats> = Default::default();
        for k in self.stages.iter().filter(|s| !s.derived).flat_map(|s| &s.top_kernels) {
            let e = by_kernel.entry((&k.name, k.shape)).or_insert_with(|| KernelStats {
                calls: 0,
                total_ns: 0,
                ..k.clone()
            });
            e.calls += k.calls;
            e.total_ns += k.total_ns;
        }
        let mut all: Vec<KernelStats> = by_kernel.into_values().collect();
        all.sort_by(KernelStats::by_time);
        all
    }
}

impl FrameStats {
    /// Device busy time as a share of the frames' GPU windows, in percent.
    pub fn gpu_busy_pct(&self) -> Option<f64> {
        self.gpu.as_ref().map(FrameGpu::busy_pct)
    }

    /// Indexes (into [`FrameStats::each`]) of frames far slower than the
    /// typical one: above the median by more than five robust deviations
    /// (1.4826 × median absolute deviation, at least 5% of the median).
    pub fn outliers(&self) -> Vec<usize> {
        let mut durations: Vec<u64> = self.each.iter().map(|f| f.duration_ns).collect();
        if durations.len() < 3 {
            return Vec::new();
        }
        durations.sort_unstable();
        let median = durations[durations.len() / 2];
        let mut deviations: Vec<u64> = durations.iter().map(|&d| d.abs_diff(median)).collect();
        deviations.sort_unstable();
        let mad = deviations[deviations.len() / 2] as f64 * 1.4826;
        let limit = median as f64 + 5.0 * mad.max(median as f64 * 0.05);
        self.each.iter().enumerate().filter(|(_, f)| f.duration_ns as f64 > limit).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(durations: &[u64]) -> FrameStats {
        let each = durations
            .iter()
            .enumerate()
            .map(|(i, &d)| FrameRecord { start_ns: i as u64 * 1000, duration_ns: d, sampled: true, gpu: None })
            .collect();
        FrameStats { each, ..FrameStats::default() }
    }

    #[test]
    fn outliers_are_the_frames_far_above_the_median() {
        // Median 101, robust deviation 1.4826 × 3 = 4.4 raised to 5% of the median:
        // the limit is 101 + 5 × 5.05 = 126.25.
        let f = frames(&[100, 101, 99, 102, 98, 127, 100, 400, 97, 126]);
        assert_eq!(f.outliers(), vec![5, 7]);
        assert!(frames(&[100, 100, 100, 124]).outliers().is_empty());
        assert!(frames(&[1, 1000]).outliers().is_empty(), "two frames have no typical one");
    }

    fn stage(name: &str, depth: u32, gpu: Option<GpuMetrics>, kernels: &[(&str, u64, u64)]) -> StageStats {
        StageStats {
            name: name.into(),
            path: vec![name.into()],
            depth,
            calls: 1,
            wall_ns: 0,
            self_ns: 0,
            self_pct: None,
            call: DurationStats::default(),
            per_call: PerCall::default(),
            cpu_ns: None,
            host_mem_peak_bytes: None,
            host_mem_net_bytes: None,
            alloc_bytes: None,
            allocs: None,
            threads: 1,
            wall_by_thread: Vec::new(),
            unwound: 0,
            unfinished: 0,
            gpu,
            gpu_traced_calls: None,
            gpu_event_ns: None,
            gpu_mem_peak_bytes: None,
            gpu_mem_net_bytes: None,
            gpu_reserved_bytes: None,
            gpu_mem_calls: None,
            process_mem_peak_bytes: None,
            process_mem_net_bytes: None,
            derived: false,
            busy_ns: None,
            per_frame: None,
            top_kernels: kernels
                .iter()
                .map(|&(n, calls, total_ns)| KernelStats { name: n.into(), shape: None, calls, total_ns })
                .collect(),
        }
    }

    #[test]
    fn gpu_and_kernel_totals_count_nested_work_once() {
        let g = |busy_ns, kernels| {
            Some(GpuMetrics { busy_ns, kernels, copy_bytes: [10, 0, 0, 0], ..GpuMetrics::default() })
        };
        let summary = Summary {
            run: RunInfo::default(),
            stages: vec![
                stage("outer", 0, g(30, 3), &[("gemm", 1, 10)]),
                stage("inner", 1, g(20, 2), &[("gemm", 2, 20)]),
                stage("other", 0, g(5, 1), &[("relu", 1, 5)]),
            ],
            frames: FrameStats::default(),
            counters: Vec::new(),
            queues: Vec::new(),
            pipeline: None,
            bottlenecks: Vec::new(),
            gpu_bottlenecks: Vec::new(),
            threads: 1,
            memory: Vec::new(),
            timeline: Timeline::default(),
        };
        let total = summary.gpu_total().unwrap();
        assert_eq!((total.busy_ns, total.kernels, total.copy_bytes[0]), (35, 4, 20));
        let kernels = summary.kernel_totals();
        assert_eq!(kernels.len(), 2);
        assert_eq!((kernels[0].name.as_str(), kernels[0].calls, kernels[0].total_ns), ("gemm", 3, 30));
        assert_eq!((kernels[1].name.as_str(), kernels[1].total_ns), ("relu", 5));
    }
}
