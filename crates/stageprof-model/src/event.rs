//! Decoded profile events and the catalog of names they refer to.
//!
//! Producers (the recorder's collector, the native reader, trace readers)
//! turn their input into [`Span`]s and [`CounterSample`]s and hand them to a
//! [`ProfileSink`]; analysis and renderers are sinks.

use foldhash::HashMap;

/// Index of a name in the [`Catalog`].
pub type NameId = u32;

/// Index of a stage path (the chain of names from the root) in the [`Catalog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub u32);

/// What a span marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A named stage of the pipeline.
    Stage,
    /// One iteration of the pipeline; frames are transparent to stage paths.
    Frame,
}

/// What is unusual about a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanFlags {
    /// Left by a panic unwinding through it.
    pub unwound: bool,
    /// Still open when recording stopped (closed at the last timestamp seen).
    pub unfinished: bool,
    /// For frames: whether the frame's stages were recorded (sampling).
    pub sampled: bool,
    /// A view derived from other stages' work (such as `<stage> (backward)`),
    /// not time of its own: left out of bottleneck rankings.
    pub derived: bool,
}

/// Host heap figures of one stage call, measured on the stage's thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostMem {
    /// Bytes allocated during the call.
    pub alloc_bytes: u64,
    /// Allocations made during the call.
    pub allocs: u64,
    /// Peak of live bytes during the call, relative to the value at its start.
    pub peak_bytes: u64,
    /// Live bytes at the end minus live bytes at the start.
    pub net_bytes: i64,
}

/// Directions of memory copies, as GPU tracers name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// Host memory to device memory.
    HostToDevice,
    /// Device memory to host memory.
    DeviceToHost,
    /// Within device memory, or between devices.
    DeviceToDevice,
    /// Peer-to-peer, host-to-host, or unknown.
    Other,
}

impl CopyKind {
    /// Every kind, in the order `GpuMetrics`' per-kind arrays use.
    pub const ALL: [CopyKind; 4] =
        [CopyKind::HostToDevice, CopyKind::DeviceToHost, CopyKind::DeviceToDevice, CopyKind::Other];

    /// The short name reports use: `htod`, `dtoh`, `dtod`, `other`.
    pub fn label(self) -> &'static str {
        match self {
            CopyKind::HostToDevice => "htod",
            CopyKind::DeviceToHost => "dtoh",
            CopyKind::DeviceToDevice => "dtod",
            CopyKind::Other => "other",
        }
    }
}

/// GPU work one stage call launched (its nested stages' included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuMetrics {
    /// Union of the intervals of its kernels, copies and memsets.
    pub busy_ns: u64,
    /// Like `busy_ns`, for the work this stage launched itself (not its nested stages).
    pub self_busy_ns: u64,
    /// First start to last end of them.
    pub span_ns: u64,
    /// Kernels launched.
    pub kernels: u64,
    /// Copies launched.
    pub copies: u64,
    /// Memsets launched.
    pub memsets: u64,
    /// Bytes copied, by [`CopyKind`] (in `CopyKind::ALL` order).
    pub copy_bytes: [u64; 4],
    /// Time spent copying, by [`CopyKind`], for bandwidth.
    pub copy_ns: [u64; 4],
    /// GPU idle time within the span (`span_ns - busy_ns`), by cause: waiting
    /// for the host to launch the next work, blocked behind a synchronization
    /// or blocking copy, and the rest.
    pub idle_host_ns: u64,
    /// Idle while the host sat in a synchronization or blocking copy.
    pub idle_sync_ns: u64,
    /// Idle for other reasons (work already launched: stream dependencies, launch latency).
    pub idle_other_ns: u64,
}

/// The device's view of one frame: the window its GPU work ran in and what
/// the device did in it (docs/summary-schema.md, `frames.each`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameGpu {
    /// Start of the window: the first start of the GPU work launched in the
    /// frame, or the end of the previous frame's window if that is later.
    pub start_ns: u64,
    /// Window length: to the last end of the frame's GPU work.
    pub span_ns: u64,
    /// Time in the window when the frame's device(s) ran anything, whoever launched it.
    pub busy_ns: u64,
    /// Busy time of the work the frame's own stages launched.
    pub busy_own_ns: u64,
    /// Time in the window when the device(s) ran nothing, by cause (as in [`GpuMetrics`]).
    pub idle_host_ns: u64,
    /// Idle while the host sat in a synchronization or blocking copy.
    pub idle_sync_ns: u64,
    /// Idle for other reasons (work already launched: stream dependencies, launch latency).
    pub idle_other_ns: u64,
}

impl FrameGpu {
    /// Adds another frame's figures (the window start stays the earliest).
    pub fn add(&mut self, other: &FrameGpu) {
        self.start_ns = self.start_ns.min(other.start_ns);
        for (a, b) in [
            (&mut self.span_ns, other.span_ns),
            (&mut self.busy_ns, other.busy_ns),
            (&mut self.busy_own_ns, other.busy_own_ns),
            (&mut self.idle_host_ns, other.idle_host_ns),
            (&mut self.idle_sync_ns, other.idle_sync_ns),
            (&mut self.idle_other_ns, other.idle_other_ns),
        ] {
            *a = a.saturating_add(b);
        }
    }

    /// Idle time in the window, all causes.
    pub fn idle_ns(&self) -> u64 {
        self.idle_host_ns.saturating_add(self.idle_sync_ns).saturating_add(self.idle_other_ns)
    }

    /// Busy time as a share of the window, in percent.
    pub fn busy_pct(&self) -> f64 {
        100.0 * self.busy_ns as f64 / self.span_ns.max(1) as f64
    }

    /// Idle time by cause (waiting for the host to launch, synchronization,
    /// other) as shares of all idle time, in percent; `None` without idle time.
    pub fn idle_shares_pct(&self) -> Option<[f64; 3]> {
        let idle = self.idle_ns();
        (idle > 0)
            .then(|| [self.idle_host_ns, self.idle_sync_ns, self.idle_other_ns].map(|v| 100.0 * v as f64 / idle as f64))
    }

    /// Busy time of the frames' own work as a share of the window, in percent.
    pub fn busy_own_pct(&self) -> f64 {
        100.0 * self.busy_own_ns as f64 / self.span_ns.max(1) as f64
    }
}

impl GpuMetrics {
    /// Kernels, copies and memsets launched.
    pub fn launched(&self) -> u64 {
        self.kernels.saturating_add(self.copies).saturating_add(self.memsets)
    }

    /// Adds another call's figures, field by field (saturating: figures read
    /// from files can be absurd, and must not wrap).
    pub fn add(&mut self, g: &GpuMetrics) {
        let sum = |x: &mut u64, y: u64| *x = x.saturating_add(y);
        sum(&mut self.busy_ns, g.busy_ns);
        sum(&mut self.self_busy_ns, g.self_busy_ns);
        sum(&mut self.span_ns, g.span_ns);
        sum(&mut self.kernels, g.kernels);
        sum(&mut self.copies, g.copies);
        sum(&mut self.memsets, g.memsets);
        for i in 0..4 {
            sum(&mut self.copy_bytes[i], g.copy_bytes[i]);
            sum(&mut self.copy_ns[i], g.copy_ns[i]);
        }
        sum(&mut self.idle_host_ns, g.idle_host_ns);
        sum(&mut self.idle_sync_ns, g.idle_sync_ns);
        sum(&mut self.idle_other_ns, g.idle_other_ns);
    }
}

/// Change of an allocator's bytes over a stage call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemDelta {
    /// Highest allocated bytes during the call minus the value at its start.
    pub peak_bytes: u64,
    /// Allocated bytes at the end minus at the start.
    pub net_bytes: i64,
    /// Allocated bytes at the end, where recorded.
    pub end_bytes: Option<i64>,
}

/// Per-call measurements beside wall time; `None` where they were not taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageMetrics {
    /// Thread CPU time of the call, where measured.
    pub cpu_ns: Option<u64>,
    /// Host memory of the call, where measured.
    pub mem: Option<HostMem>,
    /// GPU work the call launched, where traced.
    pub gpu: Option<GpuMetrics>,
    /// Device memory (the GPU allocator's bytes).
    pub gpu_mem: Option<MemDelta>,
    /// The most bytes the GPU allocator held from the driver while the call
    /// ran (torch's `memory_reserved`), where its own events say.
    pub gpu_reserved_bytes: Option<u64>,
    /// GPU time between CUDA events recorded on the call's stream at its
    /// begin and end (stageprof's `cuda` feature).
    pub gpu_event_ns: Option<u64>,
    /// The heap of all threads while the call ran (stages of the thread that drives the pipeline).
    pub process_mem: Option<MemDelta>,
    /// For frames: the device's view of the frame.
    pub frame_gpu: Option<FrameGpu>,
    /// For tasks (async spans): the time the call was entered (polled); the
    /// rest of its wall time it was idle (waiting).
    pub busy_ns: Option<u64>,
}

/// One closed stage or frame call. Times are nanoseconds since the profile's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// The thread's index in the catalog.
    pub thread: u32,
    /// A stage, a frame, or a task.
    pub kind: SpanKind,
    /// The span's own name.
    pub name: NameId,
    /// The stage's path; `None` for frames.
    pub path: Option<PathId>,
    /// Nesting depth among stages of its thread (0 = outermost).
    pub depth: u32,
    /// Start, since the profile's start.
    pub start_ns: u64,
    /// End, since the profile's start.
    pub end_ns: u64,
    /// Wall time minus the wall time of the stages nested directly in it.
    pub self_ns: u64,
    /// The frame the call ran in, numbered from 0 in the order frames began
    /// (for a frame, its own number); `None` outside frames, or where the
    /// producer cannot tell.
    pub frame: Option<u32>,
    /// What was measured over the call.
    pub metrics: StageMetrics,
    /// How the call ended and how it was recorded.
    pub flags: SpanFlags,
}

impl Span {
    /// End less start.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }
}

/// One sample of a counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterSample {
    /// The counter's name.
    pub name: NameId,
    /// The thread that recorded it.
    pub thread: u32,
    /// When, since the profile's start.
    pub ts_ns: u64,
    /// The value as recorded.
    pub value: f64,
}

/// A thread (or, for GPU traces, a stream) that spans belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The recorder's index for the thread.
    pub index: u32,
    /// The operating system's thread id.
    pub os_tid: u64,
    /// The thread's name, empty if it had none.
    pub name: String,
}

/// One node of the stage tree: a name under a parent path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathEntry {
    /// The enclosing stage's path; `None` for an outermost stage.
    pub parent: Option<PathId>,
    /// The stage's own name.
    pub name: NameId,
    /// Stages above it.
    pub depth: u32,
}

/// Names, stage paths and threads that events refer to by index.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    names: Vec<String>,
    paths: Vec<PathEntry>,
    path_index: HashMap<(Option<PathId>, NameId), PathId>,
    threads: Vec<ThreadInfo>,
}

impl Catalog {
    /// Sets name `id` (ids arrive in blocks; gaps read as "?").
    pub fn set_name(&mut self, id: NameId, name: &str) {
        let i = id as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, String::new());
        }
        self.names[i] = name.to_owned();
    }

    /// The name with this id (empty if unknown).
    pub fn name(&self, id: NameId) -> &str {
        self.names.get(id as usize).map_or("?", String::as_str)
    }

    /// How many names are known.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The path of stage `name` under `parent`, created on first use.
    pub fn intern_path(&mut self, parent: Option<PathId>, name: NameId) -> PathId {
        if let Some(&id) = self.path_index.get(&(parent, name)) {
            return id;
        }
        let depth = parent.map_or(0, |p| self.path(p).depth + 1);
        let id = PathId(self.paths.len() as u32);
        self.paths.push(PathEntry { parent, name, depth });
        self.path_index.insert((parent, name), id);
        id
    }

    /// The path with this id.
    pub fn path(&self, id: PathId) -> PathEntry {
        self.paths[id.0 as usize]
    }

    /// How many paths are known.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// The names along a path, outermost first.
    pub fn path_names(&self, id: PathId) -> Vec<&str> {
        let mut names = Vec::new();
        let mut at = Some(id);
        while let Some(p) = at {
            let entry = self.path(p);
            names.push(self.name(entry.name));
            at = entry.parent;
        }
        names.reverse();
        names
    }

    /// Records a thread's identity.
    pub fn add_thread(&mut self, thread: ThreadInfo) {
        match self.threads.iter_mut().find(|t| t.index == thread.index) {
            Some(known) => *known = thread,
            None => self.threads.push(thread),
        }
    }

    /// Every thread recorded, by index.
    pub fn threads(&self) -> &[ThreadInfo] {
        &self.threads
    }

    /// The thread with this index, if recorded.
    pub fn thread(&self, index: u32) -> Option<&ThreadInfo> {
        self.threads.iter().find(|t| t.index == index)
    }
}

/// What a piece of GPU work is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuWork {
    /// A kernel.
    Kernel,
    /// A memory copy, by direction.
    Copy(CopyKind),
    /// A memset.
    Memset,
}

/// One kernel, copy or memset, with the stage that launched it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuActivity {
    /// The launching stage's path; `None` when launched outside any stage.
    pub path: Option<PathId>,
    /// The kernel's name, or the copy's or memset's description.
    pub name: NameId,
    /// What kind of work it was.
    pub work: GpuWork,
    /// Where it ran: the device and stream numbers as the tracer gives them.
    pub device: u32,
    /// The stream it ran on.
    pub stream: u32,
    /// Start on the device, since the profile's start.
    pub start_ns: u64,
    /// End on the device, since the profile's start.
    pub end_ns: u64,
    /// Bytes copied or set (0 for kernels).
    pub bytes: u64,
    /// A kernel's launch configuration, when the tracer gave it.
    pub shape: Option<LaunchShape>,
}

/// A kernel's launch configuration: blocks in its grid, threads per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaunchShape {
    /// Blocks in the grid, x y z.
    pub grid: [u32; 3],
    /// Threads in a block, x y z.
    pub block: [u32; 3],
}

impl std::fmt::Display for LaunchShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [gx, gy, gz] = self.grid;
        let [bx, by, bz] = self.block;
        write!(f, "grid {gx}x{gy}x{gz}, block {bx}x{by}x{bz}")
    }
}

/// The allocator a [`MemoryLevel`] is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemoryPool {
    /// The host heap: all threads' (stageprof's allocator) or the CPU allocator's (PyTorch).
    Host,
    /// The GPU allocator's bytes.
    Gpu,
}

impl MemoryPool {
    /// `host` or `gpu`.
    pub fn label(self) -> &'static str {
        match self {
            MemoryPool::Host => "host",
            MemoryPool::Gpu => "gpu",
        }
    }
}

/// An allocator held `bytes` at some instant within `start_ns..=end_ns`
/// (the same for a sample taken at a known instant; a call's span for a
/// peak known only to lie within the call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLevel {
    /// Which allocator.
    pub pool: MemoryPool,
    /// Start of the span the level held over, since the profile's start.
    pub start_ns: u64,
    /// End of that span (equal to the start for an instant).
    pub end_ns: u64,
    /// Bytes in use (negative where a trace began with frees).
    pub bytes: i64,
}

/// What happened at an instrumented queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOp {
    /// The queue was made, holding at most `capacity` items (`None`: unbounded).
    Opened {
        /// Items it holds at most.
        capacity: Option<u64>,
    },
    /// An item went in, after the sender waited `blocked_ns` for room; `depth` items in it after.
    Sent {
        /// Time the sender waited on a full queue.
        blocked_ns: u64,
        /// Items in the queue right after (`None`: not read then; one more than before).
        depth: Option<u64>,
    },
    /// An item came out, after the receiver waited `waited_ns` for one; it
    /// had been in the queue `residence_ns` since its send began.
    Received {
        /// Time the receiver waited on an empty queue.
        waited_ns: u64,
        /// Items in the queue right after (`None`: not read then; one fewer than before).
        depth: Option<u64>,
        /// From the start of the item's send to this receive's return
        /// (`None`: sent while nothing recorded).
        residence_ns: Option<u64>,
        /// From the start of the send that brought the item, or the item it
        /// was made from, into the pipeline's first queue, to this receive's
        /// return (`None`: unknown). An item sent by a thread is taken to be
        /// made from the last item that thread received (format version 8).
        age_ns: Option<u64>,
    },
}

/// One operation on an instrumented queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueEvent {
    /// The queue's name.
    pub queue: NameId,
    /// The thread that did it.
    pub thread: u32,
    /// When it returned, since the profile's start.
    pub ts_ns: u64,
    /// What it did.
    pub op: QueueOp,
}

/// Something that consumes a profile's events in order of their end.
pub trait ProfileSink {
    /// Takes a finished span.
    fn span(&mut self, span: &Span, catalog: &Catalog);
    /// Takes a counter sample.
    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog);
    /// GPU work, for sinks that look at single kernels (most don't).
    fn gpu_activity(&mut self, _activity: &GpuActivity, _catalog: &Catalog) {}
    /// An allocator's level, for sinks that draw memory over time. Levels
    /// come before the spans of the calls they fall in.
    fn memory_level(&mut self, _level: &MemoryLevel) {}
    /// An operation on an instrumented queue, for sinks that follow queues.
    fn queue(&mut self, _event: &QueueEvent, _catalog: &Catalog) {}
}

/// Both sinks get every event, so one pass over a profile can feed several.
impl<A: ProfileSink, B: ProfileSink> ProfileSink for (A, B) {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        self.0.span(span, catalog);
        self.1.span(span, catalog);
    }
    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        self.0.counter(sample, catalog);
        self.1.counter(sample, catalog);
    }
    fn gpu_activity(&mut self, activity: &GpuActivity, catalog: &Catalog) {
        self.0.gpu_activity(activity, catalog);
        self.1.gpu_activity(activity, catalog);
    }
    fn memory_level(&mut self, level: &MemoryLevel) {
        self.0.memory_level(level);
        self.1.memory_level(level);
    }
    fn queue(&mut self, event: &QueueEvent, catalog: &Catalog) {
        self.0.queue(event, catalog);
        self.1.queue(event, catalog);
    }
}

/// An optional sink: `None` ignores events.
impl<S: ProfileSink> ProfileSink for Option<S> {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        if let Some(s) = self {
            s.span(span, catalog);
        }
    }
    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        if let Some(s) = self {
            s.counter(sample, catalog);
        }
    }
    fn gpu_activity(&mut self, activity: &GpuActivity, catalog: &Catalog) {
        if let Some(s) = self {
            s.gpu_activity(activity, catalog);
        }
    }
    fn memory_level(&mut self, level: &MemoryLevel) {
        if let Some(s) = self {
            s.memory_level(level);
        }
    }
    fn queue(&mut self, event: &QueueEvent, catalog: &Catalog) {
        if let Some(s) = self {
            s.queue(event, catalog);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_paths_once_and_names_them_root_first() {
        let mut c = Catalog::default();
        c.set_name(0, "depth");
        c.set_name(2, "warp");
        let root = c.intern_path(None, 0);
        let child = c.intern_path(Some(root), 2);
        assert_eq!(c.intern_path(Some(root), 2), child);
        assert_eq!(c.path_count(), 2);
        assert_eq!(c.path(child).depth, 1);
        assert_eq!(c.path_names(child), vec!["depth", "warp"]);
        assert_eq!(c.name(1), "");
        assert_eq!(c.name(99), "?");
    }
}
