//! Every per-stage figure, described once: its JSON key, its column label,
//! its unit, how to read it from [`StageStats`] and what it means.
//!
//! The terminal table, summary.json, the HTML table, the diff and the
//! history view all draw their per-stage columns from [`STAGE_FIGURES`], and
//! a test holds docs/summary-schema.md to it. Adding a figure is one entry
//! here (and the producer that measures it).

use crate::summary::StageStats;

/// What a figure's number counts; renderers format by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// How many (calls, kernels, threads).
    Count,
    /// A time.
    Nanoseconds,
    /// A memory size.
    Bytes,
    /// Bytes that may be negative (memory handed back).
    SignedBytes,
    /// A share, 0 to 100.
    Percent,
    /// Yes or no.
    Flag,
}

/// One figure's value for one stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FigureValue {
    /// A count, time or size.
    Unsigned(u64),
    /// A size that may be negative.
    Signed(i64),
    /// A share or other real number.
    Real(f64),
    /// Yes or no.
    Flag(bool),
}

impl FigureValue {
    /// The value as a number to sort or plot by (flags are 0 and 1).
    pub fn as_f64(self) -> f64 {
        match self {
            FigureValue::Unsigned(v) => v as f64,
            FigureValue::Signed(v) => v as f64,
            FigureValue::Real(v) => v,
            FigureValue::Flag(v) => f64::from(u8::from(v)),
        }
    }
}

/// A per-stage figure.
#[derive(Debug)]
pub struct StageFigure {
    /// The field in summary.json's `stages[]`.
    pub key: &'static str,
    /// The column heading in tables.
    pub label: &'static str,
    /// What the number counts.
    pub unit: Unit,
    /// What it means (the schema's wording).
    pub doc: &'static str,
    /// Its value for a stage; `None` where it was not measured.
    pub read: fn(&StageStats) -> Option<FigureValue>,
}

impl StageFigure {
    /// The figure's value for `stage`.
    pub fn value(&self, stage: &StageStats) -> Option<FigureValue> {
        (self.read)(stage)
    }

    /// Whether some stage has this figure (a column without one is left out).
    pub fn measured_in(&self, stages: &[StageStats]) -> bool {
        stages.iter().any(|s| self.value(s).is_some())
    }

    /// Whether the figure may be missing (`null` in JSON): it is for a stage that measured nothing.
    pub fn nullable(&self) -> bool {
        self.value(&StageStats::default()).is_none()
    }

    /// The schema's type for the figure.
    pub fn json_type(&self) -> &'static str {
        let base = match self.unit {
            Unit::Flag => "bool",
            Unit::Percent => "number",
            _ => "int",
        };
        match (base, self.nullable()) {
            ("bool", _) => "bool",
            ("number", true) => "number or null",
            ("int", true) => "int or null",
            (b, false) => b,
            _ => unreachable!("every base type is matched above"),
        }
    }
}

fn u(v: u64) -> Option<FigureValue> {
    Some(FigureValue::Unsigned(v))
}

macro_rules! figure {
    ($name:ident, $key:literal, $label:literal, $unit:ident, $doc:literal, |$s:ident| $read:expr) => {
        #[doc = $doc]
        pub const $name: StageFigure =
            StageFigure { key: $key, label: $label, unit: Unit::$unit, doc: $doc, read: |$s: &StageStats| $read };
    };
}

figure!(DEPTH, "depth", "depth", Count, "`len(path) - 1`", |s| u(u64::from(s.depth)));
figure!(CALLS, "calls", "calls", Count, "number of calls (exact)", |s| u(s.calls));
figure!(WALL, "wall_ns", "wall", Nanoseconds, "inclusive wall time, summed over calls", |s| u(s.wall_ns));
figure!(
    SELF,
    "self_ns",
    "self",
    Nanoseconds,
    "wall time not spent in nested stages (of the same thread), summed over calls",
    |s| u(s.self_ns)
);
figure!(
    SELF_PCT,
    "self_pct",
    "self %",
    Percent,
    "`self_ns` as a share of all stages' self time, in percent (null for derived stages, which are not time of their own)",
    |s| s.self_pct.map(FigureValue::Real)
);
figure!(MEAN, "mean_ns", "mean", Nanoseconds, "mean wall time per call (exact)", |s| u(s.call.mean_ns));
figure!(MIN, "min_ns", "min", Nanoseconds, "shortest call's wall time", |s| u(s.call.min_ns));
figure!(MAX, "max_ns", "max", Nanoseconds, "longest call's wall time", |s| u(s.call.max_ns));
figure!(STDDEV, "stddev_ns", "stddev", Nanoseconds, "standard deviation of the calls' wall time", |s| u(s
    .call
    .stddev_ns));
figure!(P50, "p50_ns", "p50", Nanoseconds, "median wall time per call, nearest rank (see below)", |s| u(s.call.p50_ns));
figure!(P95, "p95_ns", "p95", Nanoseconds, "95th percentile of the wall time per call, nearest rank", |s| u(s
    .call
    .p95_ns));
figure!(P99, "p99_ns", "p99", Nanoseconds, "99th percentile of the wall time per call, nearest rank", |s| u(s
    .call
    .p99_ns));
figure!(CPU, "cpu_ns", "cpu", Nanoseconds, "thread CPU time, summed over calls", |s| s
    .cpu_ns
    .map(FigureValue::Unsigned));
figure!(
    HOST_MEM_PEAK,
    "host_mem_peak_bytes",
    "host peak",
    Bytes,
    "largest per-call peak of live host bytes above the value at the call's start (this thread's allocations)",
    |s| s.host_mem_peak_bytes.map(FigureValue::Unsigned)
);
figure!(
    HOST_MEM_NET,
    "host_mem_net_bytes",
    "host net",
    SignedBytes,
    "live host bytes at the end minus at the start, summed over calls (positive: the stage hands memory on)",
    |s| s.host_mem_net_bytes.map(FigureValue::Signed)
);
figure!(ALLOC_BYTES, "alloc_bytes", "allocated", Bytes, "bytes allocated, summed over calls", |s| s
    .alloc_bytes
    .map(FigureValue::Unsigned));
figure!(ALLOCS, "allocs", "allocs", Count, "allocations, summed over calls", |s| s.allocs.map(FigureValue::Unsigned));
figure!(
    PROCESS_MEM_PEAK,
    "process_mem_peak_bytes",
    "heap peak (all threads)",
    Bytes,
    "for stages of the thread that drives the pipeline (the one that started the profiler): largest per-call peak of all threads' heap above its value at the call's start, so work handed to thread pools counts; exact to 64 KiB per thread",
    |s| s.process_mem_peak_bytes.map(FigureValue::Unsigned)
);
figure!(
    PROCESS_MEM_NET,
    "process_mem_net_bytes",
    "heap net (all threads)",
    SignedBytes,
    "the same threads' heap at the end minus at the start, summed over calls",
    |s| s.process_mem_net_bytes.map(FigureValue::Signed)
);
figure!(
    MEM_PEAK,
    "mem_peak_bytes",
    "mem peak",
    Bytes,
    "the stage's host memory peak: `process_mem_peak_bytes` where measured, else `host_mem_peak_bytes`",
    |s| s.mem_peak_bytes().map(FigureValue::Unsigned)
);
figure!(
    MEM_NET,
    "mem_net_bytes",
    "mem net",
    SignedBytes,
    "the host memory the stage handed on: `process_mem_net_bytes` where measured, else `host_mem_net_bytes`",
    |s| s.mem_net_bytes().map(FigureValue::Signed)
);
figure!(THREADS, "threads", "threads", Count, "threads the stage ran on", |s| u(u64::from(s.threads)));
figure!(UNWOUND, "unwound", "unwound", Count, "calls left by a panic or an exception", |s| u(s.unwound));
figure!(UNFINISHED, "unfinished", "unfinished", Count, "calls still open when recording stopped", |s| u(s.unfinished));
figure!(
    DERIVED,
    "derived",
    "derived",
    Flag,
    "a view of other stages' work, not time of its own: `<stage> (backward)` is the GPU work autograd ran for the forward stage `<stage>` (linked by the operators' sequence numbers); it is also counted in the stage that was open when it was launched, and never ranked as a bottleneck",
    |s| Some(FigureValue::Flag(s.derived))
);
figure!(
    BUSY,
    "busy_ns",
    "busy",
    Nanoseconds,
    "for tasks (spans from the `tracing` Layer: one call from the span's creation to its close, whichever threads polled it): the time its calls were entered, summed; a task's `self_ns` is its busy time less its child tasks'",
    |s| s.busy_ns.map(FigureValue::Unsigned)
);
figure!(IDLE, "idle_ns", "idle", Nanoseconds, "for tasks: `wall_ns` less `busy_ns`, the time they waited", |s| s
    .idle_ns()
    .map(FigureValue::Unsigned));
figure!(
    GPU_BUSY,
    "gpu_busy_ns",
    "gpu busy",
    Nanoseconds,
    "GPU work the stage launched (kernels, copies, memsets; nested stages included): union of their intervals, summed over the calls counted in `gpu_traced_calls`; null where it launched none",
    |s| s.gpu_work().map(|g| FigureValue::Unsigned(g.busy_ns))
);
figure!(
    GPU_SELF_BUSY,
    "gpu_self_busy_ns",
    "gpu self busy",
    Nanoseconds,
    "the same for the work launched by the stage itself, not its nested stages",
    |s| s.gpu_work().map(|g| FigureValue::Unsigned(g.self_busy_ns))
);
figure!(
    GPU_SPAN,
    "gpu_span_ns",
    "gpu span",
    Nanoseconds,
    "first start to last end of that work, summed over the same calls",
    |s| s.gpu_work().map(|g| FigureValue::Unsigned(g.span_ns))
);
figure!(
    GPU_TRACED_CALLS,
    "gpu_traced_calls",
    "gpu traced calls",
    Count,
    "calls whose GPU work was traced, which the figures of that work are summed over: all of them, except where kernel tracing ran in some frames only (`kernel_every`), then the calls inside those frames",
    |s| s.gpu_traced_calls.map(FigureValue::Unsigned)
);
figure!(GPU_KERNELS, "gpu_kernels", "kernels", Count, "kernels of that work", |s| s
    .gpu
    .map(|g| FigureValue::Unsigned(g.kernels)));
figure!(GPU_COPIES, "gpu_copies", "copies", Count, "copies of that work", |s| s
    .gpu
    .map(|g| FigureValue::Unsigned(g.copies)));
figure!(GPU_MEMSETS, "gpu_memsets", "memsets", Count, "memsets of that work", |s| s
    .gpu
    .map(|g| FigureValue::Unsigned(g.memsets)));
figure!(
    GPU_EVENTS,
    "gpu_event_ns",
    "gpu (events)",
    Nanoseconds,
    "GPU time between CUDA events at each call's begin and end on its thread's stream, summed over calls (the `cuda` feature); it counts work queued before the call and, while the GPU idles, the host's time; null where kernel tracing saw the stage launch nothing",
    |s| s.gpu_event_ns.filter(|_| s.launched_gpu_work() != Some(false)).map(FigureValue::Unsigned)
);
figure!(
    GPU_MEM_PEAK,
    "gpu_mem_peak_bytes",
    "gpu peak",
    Bytes,
    "largest per-call peak of the GPU allocator's bytes above the value at the call's start, over the calls counted in `gpu_mem_calls`",
    |s| s.gpu_mem_peak_bytes.map(FigureValue::Unsigned)
);
figure!(
    GPU_MEM_NET,
    "gpu_mem_net_bytes",
    "gpu net",
    SignedBytes,
    "GPU allocator bytes at the end minus at the start, summed over the calls counted in `gpu_mem_calls`",
    |s| s.gpu_mem_net_bytes.map(FigureValue::Signed)
);
figure!(
    GPU_MEM_CALLS,
    "gpu_mem_calls",
    "gpu mem calls",
    Count,
    "calls whose GPU memory was measured: all of them, except where PyTorch's allocator trace covered only some frames (it is read for as many frames as keep its cost under 1%)",
    |s| s.gpu_mem_calls.map(FigureValue::Unsigned)
);
figure!(
    GPU_RESERVED,
    "gpu_reserved_bytes",
    "gpu reserved",
    Bytes,
    "the most bytes the GPU allocator held from the driver (cached and in use) during any call, from the allocator's own trace",
    |s| s.gpu_reserved_bytes.map(FigureValue::Unsigned)
);

/// Every per-stage figure, in the order summary.json lists them.
pub const STAGE_FIGURES: &[&StageFigure] = &[
    &DEPTH,
    &CALLS,
    &WALL,
    &SELF,
    &SELF_PCT,
    &MEAN,
    &MIN,
    &MAX,
    &STDDEV,
    &P50,
    &P95,
    &P99,
    &CPU,
    &HOST_MEM_PEAK,
    &HOST_MEM_NET,
    &ALLOC_BYTES,
    &ALLOCS,
    &PROCESS_MEM_PEAK,
    &PROCESS_MEM_NET,
    &MEM_PEAK,
    &MEM_NET,
    &THREADS,
    &UNWOUND,
    &UNFINISHED,
    &DERIVED,
    &BUSY,
    &IDLE,
    &GPU_BUSY,
    &GPU_SELF_BUSY,
    &GPU_SPAN,
    &GPU_TRACED_CALLS,
    &GPU_KERNELS,
    &GPU_COPIES,
    &GPU_MEMSETS,
    &GPU_EVENTS,
    &GPU_MEM_PEAK,
    &GPU_MEM_NET,
    &GPU_MEM_CALLS,
    &GPU_RESERVED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_labels_are_unique() {
        let mut keys: Vec<&str> = STAGE_FIGURES.iter().map(|f| f.key).collect();
        let mut labels: Vec<&str> = STAGE_FIGURES.iter().map(|f| f.label).collect();
        keys.sort_unstable();
        labels.sort_unstable();
        keys.dedup();
        labels.dedup();
        assert_eq!((keys.len(), labels.len()), (STAGE_FIGURES.len(), STAGE_FIGURES.len()));
    }

    #[test]
    fn figures_read_the_fields_they_name() {
        let stage = StageStats {
            calls: 3,
            wall_ns: 30,
            busy_ns: Some(12),
            host_mem_peak_bytes: Some(7),
            process_mem_peak_bytes: None,
            gpu_mem_net_bytes: Some(-5),
            ..StageStats::default()
        };
        assert_eq!(CALLS.value(&stage), Some(FigureValue::Unsigned(3)));
        assert_eq!(IDLE.value(&stage), Some(FigureValue::Unsigned(18)));
        assert_eq!(MEM_PEAK.value(&stage), Some(FigureValue::Unsigned(7)));
        assert_eq!(GPU_MEM_NET.value(&stage), Some(FigureValue::Signed(-5)));
        assert_eq!(GPU_BUSY.value(&stage), None);
        assert_eq!((CALLS.json_type(), GPU_BUSY.json_type(), DERIVED.json_type()), ("int", "int or null", "bool"));
    }
}
