//! The record layout of the recorder's thread buffers and of native files.
//!
//! A record is a run of `u64` words. The first word is a header: the record
//! kind in the low 4 bits, flags in the next 12, an id (stage name or counter
//! name) in the high 32. The recorder writes these words straight into its
//! buffers; the native file stores them verbatim, so a reader decodes exactly
//! what the hot path wrote.

use crate::event::{CopyKind, GpuWork, HostMem, LaunchShape, MemoryPool};

/// Record kinds (low 4 bits of the header word).
pub mod kind {
    /// `[header, ts]`: a stage opens.
    pub const BEGIN_STAGE: u64 = 1;
    /// `[header, ts]`: a frame opens. Flag [`super::flag::SAMPLED`] says whether its stages are recorded.
    pub const BEGIN_FRAME: u64 = 2;
    /// `[header, ts, (cpu_ns), (alloc_bytes, allocs, mem_peak, mem_net)]`: the innermost open span closes.
    pub const END: u64 = 3;
    /// `[header, ts, value as f64 bits]`: a counter sample.
    pub const COUNTER: u64 = 4;
    /// `[header, peak_bytes, net_bytes, (end_bytes)]`: process-wide heap
    /// figures of the stage whose END follows on the same thread (format
    /// version 2; the heap's bytes at the end with [`super::flag::HAS_LEVEL`], version 3).
    pub const PROCESS_MEM: u64 = 5;
    /// `[header, instance]`: the stage or frame that BEGIN just opened on this
    /// thread is GPU instance `instance`; GPU records name it (version 4).
    /// Flag [`super::flag::UNTIMED`]: its begin event could not be recorded,
    /// so no GPU_TIME will name it (version 9).
    pub const GPU_LINK: u64 = 6;
    /// `[header(device), instance, elapsed_ns]`: GPU time between the CUDA
    /// events recorded at the instance's begin and end (version 4). Flag
    /// [`super::flag::UNTIMED`]: the events could not be timed (version 9).
    pub const GPU_TIME: u64 = 7;
    /// `[header(name), instance, start_ticks, end_ticks, device << 32 | stream, bytes,
    /// (launch_ticks), (grid, block)]`: a kernel, copy or memset the instance
    /// launched (0: outside any stage); the flags say which
    /// ([`super::gpu_work_flags`]) and which optional words follow (version 4;
    /// the optional words, version 5). See [`super::GpuActivityRecord`].
    pub const GPU_ACTIVITY: u64 = 8;
    /// `[header(name), start_ticks, end_ticks, busy_ns, id, parent, depth, ancestors...]`:
    /// a task (an async span) closed: from its creation to its close, entered
    /// for `busy_ns`; `id` and `parent` are the tracer's ids (0: none); its
    /// `depth` ancestors' names follow, outermost first, two to a word
    /// (version 6). See [`super::TaskRecord`].
    pub const TASK: u64 = 9;
    /// `[header(device), ticks, allocated_bytes, reserved_bytes]`: a GPU
    /// allocator's levels right after one of its events, from the allocator's
    /// own trace (torch's caching allocator); flags [`super::flag::TRACE_START`]
    /// and [`super::flag::TRACE_END`] mark the levels where the trace was
    /// turned on and read, so that readers know which calls it covered (version 7).
    pub const GPU_MEMORY: u64 = 10;
    /// An operation on an instrumented queue (header id: the queue's name):
    /// `[header, ticks, capacity]` with [`super::flag::QUEUE_OPENED`] (capacity
    /// `u64::MAX`: unbounded); `[header, ticks, blocked_ticks, depth]` for an
    /// item sent; `[header, ticks, waited_ticks, depth, sent_ticks]` with
    /// [`super::flag::QUEUE_RECEIVED`] and [`super::flag::QUEUE_SEND_TICK`]
    /// for an item received, `sent_ticks` the tick its send began (`u64::MAX`:
    /// not recorded then; version 10). Durations are in ticks, converted when
    /// read, so that the hot path does no division (version 7). Versions 7 to
    /// 9 wrote a received item's residence ticks instead of its send tick,
    /// then with [`super::flag::QUEUE_AGED`] its age in the pipeline (version 8).
    /// With [`super::flag::QUEUE_AT_ONCE`] the wait word is left out (version
    /// 10), with [`super::flag::QUEUE_DEPTH_UNREAD`] the depth word (version 12).
    /// A received item that carried no send tick has
    /// [`super::flag::QUEUE_UNSTAMPED`] instead of `QUEUE_SEND_TICK`, and no
    /// word for it (version 13).
    pub const QUEUE: u64 = 11;
    /// `[header, ticks]`: every GPU_MEMORY level of the allocator's trace up
    /// to `ticks` is written, so calls that ended by then can be given their
    /// GPU memory; flag [`super::flag::TRACE_OFF`]: the trace was off at
    /// `ticks`, [`super::flag::TRACE_DONE`]: no level will follow (version 9).
    pub const GPU_MEMORY_MARK: u64 = 12;
    /// `[header, ticks]`: kernel tracing (CUPTI) was turned on (flag
    /// [`super::flag::TRACE_START`]) or off ([`super::flag::TRACE_END`]) at
    /// `ticks`, where it runs in some frames only: the calls inside an on-off
    /// window have their kernels, copies and memsets; no other has. A profile
    /// with no such record traced throughout (version 11).
    pub const KERNEL_TRACE: u64 = 13;
}

/// Header flags (bits 4..16 of the header word).
pub mod flag {
    /// END: the stage was left by a panic unwinding through it.
    pub const UNWOUND: u64 = 1 << 4;
    /// END: a thread CPU time word follows the timestamp.
    pub const HAS_CPU: u64 = 1 << 5;
    /// END: four memory words follow (alloc bytes, alloc count, peak, net).
    pub const HAS_MEM: u64 = 1 << 6;
    /// BEGIN_FRAME: the frame is sampled (its stages are recorded).
    pub const SAMPLED: u64 = 1 << 7;
    /// PROCESS_MEM: the heap's bytes at the stage's end follow.
    pub const HAS_LEVEL: u64 = 1 << 8;
    /// PROCESS_MEM: the figures are of GPU memory allocated through stageprof (version 4).
    pub const GPU_POOL: u64 = 1 << 9;
    /// GPU_ACTIVITY: the work is a copy, of the direction in bits 12..14.
    pub const COPY: u64 = 1 << 10;
    /// GPU_ACTIVITY: the work is a memset.
    pub const MEMSET: u64 = 1 << 11;
    /// GPU_ACTIVITY: the launching API call's start (ticks) follows (version 5).
    pub const LAUNCHED: u64 = 1 << 14;
    /// GPU_ACTIVITY: the kernel's grid and block words follow (version 5).
    pub const SHAPE: u64 = 1 << 15;
    /// GPU_TIME: the call ended on another stream than it began on (timed to the later end) (version 7).
    pub const STREAM_CHANGED: u64 = 1 << 4;
    /// QUEUE: the queue was made.
    pub const QUEUE_OPENED: u64 = 1 << 4;
    /// QUEUE: an item was received (else sent).
    pub const QUEUE_RECEIVED: u64 = 1 << 5;
    /// QUEUE: a received item's age in the pipeline follows (version 8).
    pub const QUEUE_AGED: u64 = 1 << 6;
    /// QUEUE: a received item's send tick follows, instead of its residence (version 10).
    pub const QUEUE_SEND_TICK: u64 = 1 << 7;
    /// QUEUE: the operation went through at once; its wait word (0) is left out (version 10).
    pub const QUEUE_AT_ONCE: u64 = 1 << 8;
    /// QUEUE: the queue's depth was not read; its word is left out, and the
    /// depth is one more (sent) or one less (received) than before (version 12).
    pub const QUEUE_DEPTH_UNREAD: u64 = 1 << 9;
    /// QUEUE: a received item that carried no send tick; no word says one,
    /// and the reader pairs the receive with its send (version 13).
    pub const QUEUE_UNSTAMPED: u64 = 1 << 10;
    /// GPU_MEMORY: the allocator's trace starts here (the level when it was
    /// turned on); KERNEL_TRACE: kernel tracing was turned on.
    pub const TRACE_START: u64 = 1 << 4;
    /// GPU_MEMORY: the allocator's trace was read here (the level then); it
    /// covered the time since its start, or since the last read where it
    /// went on through that one (no start between); KERNEL_TRACE: kernel
    /// tracing was turned off.
    pub const TRACE_END: u64 = 1 << 5;
    /// GPU_LINK, GPU_TIME: no GPU time will be (or was) measured for the instance.
    pub const UNTIMED: u64 = 1 << 5;
    /// GPU_MEMORY_MARK: the allocator's trace was off at the mark.
    pub const TRACE_OFF: u64 = 1 << 4;
    /// GPU_MEMORY_MARK: the allocator's trace is over for good.
    pub const TRACE_DONE: u64 = 1 << 5;
}

/// Flags of a GPU_ACTIVITY record for `work`.
pub const fn gpu_work_flags(work: GpuWork) -> u64 {
    match work {
        GpuWork::Kernel => 0,
        GpuWork::Memset => flag::MEMSET,
        GpuWork::Copy(k) => flag::COPY | (k as u64) << 12,
    }
}

fn gpu_work_of(flags: u64) -> GpuWork {
    if flags & flag::MEMSET != 0 {
        GpuWork::Memset
    } else if flags & flag::COPY != 0 {
        GpuWork::Copy(CopyKind::ALL[(flags >> 12 & 3) as usize])
    } else {
        GpuWork::Kernel
    }
}

const KIND_MASK: u64 = 0xf;
const FLAG_MASK: u64 = 0xfff0;

/// Words of a BEGIN record.
pub const BEGIN_WORDS: usize = 2;
/// Words of a COUNTER record.
pub const COUNTER_WORDS: usize = 3;
/// Most words the opening of a span can take: a BEGIN record and a GPU_LINK.
pub const MAX_BEGIN_WORDS: usize = BEGIN_WORDS + GPU_LINK_WORDS;
/// Most words the closing of a span can take: an END record and the
/// PROCESS_MEM records (heap and GPU) before it.
pub const MAX_END_WORDS: usize = 7 + 2 * PROCESS_WORDS;
/// Most words of a PROCESS_MEM record.
pub const PROCESS_WORDS: usize = 4;
/// Words of a GPU_LINK record.
pub const GPU_LINK_WORDS: usize = 2;
/// Words of a GPU_TIME record.
pub const GPU_TIME_WORDS: usize = 3;
/// Words of a GPU_MEMORY_MARK record.
pub const GPU_MEMORY_MARK_WORDS: usize = 2;
/// Words of a KERNEL_TRACE record.
pub const KERNEL_TRACE_WORDS: usize = 2;
/// Words of a GPU_ACTIVITY record without its optional words.
pub const GPU_ACTIVITY_WORDS: usize = 6;
/// Most words of a GPU_ACTIVITY record.
pub const MAX_GPU_ACTIVITY_WORDS: usize = GPU_ACTIVITY_WORDS + 3;

/// Words of a GPU_MEMORY record.
pub const GPU_MEMORY_WORDS: usize = 4;
/// Words of a TASK record before its ancestors' names.
pub const TASK_WORDS: usize = 7;
/// Most ancestors a TASK record names; deeper ones are cut from the top.
pub const MAX_TASK_DEPTH: usize = 32;
/// Most words of a TASK record.
pub const MAX_TASK_WORDS: usize = TASK_WORDS + MAX_TASK_DEPTH / 2;

/// Number of words a GPU_ACTIVITY record with these flags takes.
pub const fn gpu_activity_words(flags: u64) -> usize {
    GPU_ACTIVITY_WORDS + if flags & flag::LAUNCHED != 0 { 1 } else { 0 } + if flags & flag::SHAPE != 0 { 2 } else { 0 }
}

/// Builds a header word.
#[inline(always)]
pub const fn header(kind: u64, flags: u64, id: u32) -> u64 {
    kind | flags | ((id as u64) << 32)
}

/// One decoded record; timestamps are still in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Record {
    /// A stage or frame begins.
    Begin {
        /// The stage's name id.
        name: u32,
        /// Clock ticks at the begin.
        ticks: u64,
        /// Whether this is a frame.
        frame: bool,
        /// Whether its frame was sampled (stages inside recorded).
        sampled: bool,
    },
    /// A stage or frame ends.
    End {
        /// The stage's name id.
        name: u32,
        /// Clock ticks at the end.
        ticks: u64,
        /// Whether a panic or exception left the stage.
        unwound: bool,
        /// Thread CPU time of the call, where measured.
        cpu_ns: Option<u64>,
        /// Host memory of the call, where measured.
        mem: Option<HostMem>,
    },
    /// A counter sample.
    Counter {
        /// The counter's name id.
        name: u32,
        /// Clock ticks when sampled.
        ticks: u64,
        /// The value.
        value: f64,
    },
    /// Allocator figures of the stage whose END follows on the same thread.
    ProcessMem {
        /// Which allocator.
        pool: MemoryPool,
        /// Highest bytes above the call's start.
        peak_bytes: u64,
        /// Bytes at the end less at the start.
        net_bytes: i64,
        /// The allocator's level at the end, where known.
        end_bytes: Option<i64>,
    },
    /// Links the stage call that ends next to its GPU results.
    GpuLink {
        /// The call's instance number, as the GPU ledger names it.
        instance: u64,
        /// Whether a [`Record::GpuTime`] will name it.
        timed: bool,
    },
    /// GPU time between CUDA events around a call.
    GpuTime {
        /// The device the events ran on.
        device: u32,
        /// The call's instance number.
        instance: u64,
        /// Time between the events; `None` where they could not be timed.
        elapsed_ns: Option<u64>,
        /// Whether the call ended on another stream than it began on.
        stream_changed: bool,
    },
    /// One piece of GPU work from the activity tracer.
    GpuActivity(GpuActivityRecord),
    /// A task (async span) closed.
    Task(TaskRecord),
    /// An operation on an instrumented queue.
    Queue {
        /// The queue's name id.
        name: u32,
        /// Clock ticks when the operation returned.
        ticks: u64,
        /// What happened, in ticks.
        op: QueueRecord,
    },
    /// A GPU allocator's levels after one of its events.
    GpuMemory {
        /// The device of the allocator.
        device: u32,
        /// Clock ticks of the event.
        ticks: u64,
        /// Bytes handed out to the program (torch's `memory_allocated`).
        allocated_bytes: i64,
        /// Bytes the allocator holds from the driver (torch's `memory_reserved`).
        reserved_bytes: u64,
        /// [`flag::TRACE_START`], [`flag::TRACE_END`] or neither.
        edge: u64,
    },
    /// The allocator's trace is written up to a moment.
    GpuMemoryMark {
        /// Clock ticks up to which every level is written.
        ticks: u64,
        /// Whether the trace was off then.
        trace_off: bool,
        /// Whether the trace is over for good.
        done: bool,
    },
    /// Kernel tracing was turned on or off (it runs in some frames only).
    KernelTrace {
        /// Clock ticks when it was.
        ticks: u64,
        /// On (`true`) or off.
        on: bool,
    },
}

/// A queue operation as recorded: its times and durations in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRecord {
    /// The queue was made, holding at most `capacity` items (`None`: unbounded).
    Opened {
        /// Items it holds at most.
        capacity: Option<u64>,
    },
    /// An item went in after the sender waited `blocked` for room, leaving `depth` items.
    Sent {
        /// Ticks the sender waited on a full queue.
        blocked: u64,
        /// Items in the queue right after (`None`: not read; one more than before).
        depth: Option<u64>,
    },
    /// An item came out after the receiver waited `waited` for one, leaving
    /// `depth` items; its send began at tick `sent`, where the item carried
    /// it (Python's queue), else the reader pairs the receive with its send
    /// (see `ingest::queue_order`). The tick is the item's id too: the reader
    /// follows it back through the pipeline for the item's age (see
    /// `ingest::item_origins`).
    Received {
        /// Ticks the receiver waited on an empty queue.
        waited: u64,
        /// Items in the queue right after (`None`: not read; one fewer than before).
        depth: Option<u64>,
        /// When the item's send began.
        sent: Option<u64>,
    },
    /// An item received, as format versions 7 to 9 wrote it: its residence
    /// and age worked out when it was recorded (`None`: unknown).
    ReceivedAged {
        /// Ticks the receiver waited on an empty queue.
        waited: u64,
        /// Items in the queue right after.
        depth: u64,
        /// Ticks from the start of the item's send to this receive's return.
        residence: Option<u64>,
        /// Ticks since the item entered the pipeline (version 8).
        age: Option<u64>,
    },
}

/// Most words of a QUEUE record.
pub const MAX_QUEUE_WORDS: usize = 6;

/// Writes the words of a [`Record::Queue`] into `words`; how many there are.
/// (Into the caller's array: an array returned by value was copied with wide
/// loads over its narrow stores, which stalled the queue's hot path.)
#[inline]
pub const fn queue_words(name: u32, ticks: u64, op: QueueRecord, words: &mut [u64; MAX_QUEUE_WORDS]) -> usize {
    const fn or_max(v: Option<u64>) -> u64 {
        match v {
            Some(v) => v,
            None => u64::MAX,
        }
    }
    // `[header, ticks]`, then the wait, the depth and up to two last words, each where it is written.
    let (mut flags, wait, depth, last) = match op {
        QueueRecord::Opened { capacity } => {
            words[0] = header(kind::QUEUE, flag::QUEUE_OPENED, name);
            words[1] = ticks;
            words[2] = or_max(capacity);
            return 3;
        }
        QueueRecord::Sent { blocked, depth } => (0, blocked, depth, [None, None]),
        QueueRecord::Received { waited, depth, sent: Some(sent) } => {
            (flag::QUEUE_RECEIVED | flag::QUEUE_SEND_TICK, waited, depth, [Some(sent), None])
        }
        QueueRecord::Received { waited, depth, sent: None } => {
            (flag::QUEUE_RECEIVED | flag::QUEUE_UNSTAMPED, waited, depth, [None, None])
        }
        QueueRecord::ReceivedAged { waited, depth, residence, age } => {
            let aged = if age.is_some() { flag::QUEUE_AGED } else { 0 };
            (flag::QUEUE_RECEIVED | aged, waited, Some(depth), [Some(or_max(residence)), age])
        }
    };
    // An operation that went through at once (most do) leaves out its zero wait.
    if wait == 0 {
        flags |= flag::QUEUE_AT_ONCE;
    }
    if depth.is_none() {
        flags |= flag::QUEUE_DEPTH_UNREAD;
    }
    let written = [if wait == 0 { None } else { Some(wait) }, depth, last[0], last[1]];
    words[1] = ticks;
    let mut len = 2;
    let mut i = 0;
    while i < written.len() {
        if let Some(w) = written[i] {
            words[len] = w;
            len += 1;
        }
        i += 1;
    }
    words[0] = header(kind::QUEUE, flags, name);
    len
}

/// A QUEUE record's operation, from its header's flags and its words.
fn queue_record(flags: u64, rec: &[u64]) -> QueueRecord {
    if flags & flag::QUEUE_OPENED != 0 {
        return QueueRecord::Opened { capacity: known(rec[2]) };
    }
    // The wait, unless the operation went through at once, then the depth, unless unread, then the rest.
    let (wait, rest) = if flags & flag::QUEUE_AT_ONCE != 0 { (0, &rec[2..]) } else { (rec[2], &rec[3..]) };
    let (depth, rest) = if flags & flag::QUEUE_DEPTH_UNREAD != 0 { (None, rest) } else { (Some(rest[0]), &rest[1..]) };
    if flags & flag::QUEUE_UNSTAMPED != 0 {
        QueueRecord::Received { waited: wait, depth, sent: None }
    } else if flags & flag::QUEUE_SEND_TICK != 0 {
        QueueRecord::Received { waited: wait, depth, sent: known(rest[0]) }
    } else if flags & flag::QUEUE_RECEIVED != 0 {
        QueueRecord::ReceivedAged {
            waited: wait,
            depth: depth.unwrap_or(0),
            residence: known(rest[0]),
            age: rest.get(1).copied().filter(|_| flags & flag::QUEUE_AGED != 0),
        }
    } else {
        QueueRecord::Sent { blocked: wait, depth }
    }
}

/// `v`, where `u64::MAX` stands for none.
fn known(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

const fn queue_len(flags: u64) -> usize {
    if flags & flag::QUEUE_OPENED != 0 {
        return 3;
    }
    // `[header, ticks, wait, depth]`, and a received item's send tick or residence and age.
    let len = if flags & flag::QUEUE_UNSTAMPED != 0 {
        4
    } else if flags & (flag::QUEUE_RECEIVED | flag::QUEUE_SEND_TICK) != 0 {
        5 + (flags & flag::QUEUE_AGED != 0) as usize
    } else {
        4
    };
    len - (flags & flag::QUEUE_AT_ONCE != 0) as usize - (flags & flag::QUEUE_DEPTH_UNREAD != 0) as usize
}

/// The words of a [`Record::GpuMemory`]; `edge` is [`flag::TRACE_START`], [`flag::TRACE_END`] or 0.
pub const fn gpu_memory_words(
    device: u32,
    edge: u64,
    ticks: u64,
    allocated_bytes: i64,
    reserved_bytes: u64,
) -> [u64; GPU_MEMORY_WORDS] {
    [header(kind::GPU_MEMORY, edge, device), ticks, allocated_bytes as u64, reserved_bytes]
}

/// The words of a [`Record::GpuMemoryMark`].
pub const fn gpu_memory_mark_words(ticks: u64, trace_off: bool, done: bool) -> [u64; GPU_MEMORY_MARK_WORDS] {
    let off = if trace_off { flag::TRACE_OFF } else { 0 };
    let done = if done { flag::TRACE_DONE } else { 0 };
    [header(kind::GPU_MEMORY_MARK, off | done, 0), ticks]
}

/// The words of a [`Record::KernelTrace`].
pub const fn kernel_trace_words(ticks: u64, on: bool) -> [u64; KERNEL_TRACE_WORDS] {
    let edge = if on { flag::TRACE_START } else { flag::TRACE_END };
    [header(kind::KERNEL_TRACE, edge, 0), ticks]
}

/// A task (an async span: one call from its creation to its close, polled
/// on any threads) as the native format stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// The task's name id.
    pub name: u32,
    /// Clock ticks at its creation.
    pub start_ticks: u64,
    /// Clock ticks at its close.
    pub end_ticks: u64,
    /// Time it was entered (polled), in nanoseconds.
    pub busy_ns: u64,
    /// The tracer's id of the task and of its parent (0: none), so that a
    /// parent's own busy time can leave out its children's.
    pub id: u64,
    /// The enclosing task's id, 0 for none.
    pub parent: u64,
    /// Names of its ancestors, outermost first: `ancestors[..depth]`.
    pub ancestors: [u32; MAX_TASK_DEPTH],
    /// Tasks above it.
    pub depth: usize,
}

impl TaskRecord {
    /// The record's words, and how many of the array are used.
    pub fn encode(&self) -> ([u64; MAX_TASK_WORDS], usize) {
        let depth = self.depth.min(MAX_TASK_DEPTH);
        let mut words = [0u64; MAX_TASK_WORDS];
        words[..TASK_WORDS].copy_from_slice(&[
            header(kind::TASK, 0, self.name),
            self.start_ticks,
            self.end_ticks,
            self.busy_ns,
            self.id,
            self.parent,
            depth as u64,
        ]);
        for (i, pair) in self.ancestors[..depth].chunks(2).enumerate() {
            words[TASK_WORDS + i] = u64::from(pair[0]) | pair.get(1).map_or(0, |&n| u64::from(n) << 32);
        }
        (words, TASK_WORDS + depth.div_ceil(2))
    }

    fn decode(id: u32, rec: &[u64]) -> TaskRecord {
        let depth = (rec[6] as usize).min(MAX_TASK_DEPTH);
        let mut ancestors = [0u32; MAX_TASK_DEPTH];
        for (i, a) in ancestors[..depth].iter_mut().enumerate() {
            *a = (rec[TASK_WORDS + i / 2] >> (32 * (i % 2))) as u32;
        }
        TaskRecord {
            name: id,
            start_ticks: rec[1],
            end_ticks: rec[2],
            busy_ns: rec[3],
            id: rec[4],
            parent: rec[5],
            ancestors,
            depth,
        }
    }
}

/// A kernel, copy or memset as the native format stores it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuActivityRecord {
    /// The kernel's name id, or the copy's or memset's.
    pub name: u32,
    /// What kind of work it was.
    pub work: GpuWork,
    /// The GPU instance of the stage that launched it; 0: launched outside every stage.
    pub instance: u64,
    /// Clock ticks at its start on the device.
    pub start_ticks: u64,
    /// Clock ticks at its end on the device.
    pub end_ticks: u64,
    /// The device it ran on.
    pub device: u32,
    /// The stream it ran on.
    pub stream: u32,
    /// Bytes copied or set.
    pub bytes: u64,
    /// When the API call that launched it began.
    pub launch_ticks: Option<u64>,
    /// Grid and block, for kernels whose tracer gave them.
    pub shape: Option<LaunchShape>,
}

impl GpuActivityRecord {
    /// The record's words, and how many of the array are used.
    pub fn encode(&self) -> ([u64; MAX_GPU_ACTIVITY_WORDS], usize) {
        let flags = gpu_work_flags(self.work)
            | if self.launch_ticks.is_some() { flag::LAUNCHED } else { 0 }
            | if self.shape.is_some() { flag::SHAPE } else { 0 };
        let mut words = [0u64; MAX_GPU_ACTIVITY_WORDS];
        words[..GPU_ACTIVITY_WORDS].copy_from_slice(&[
            header(kind::GPU_ACTIVITY, flags, self.name),
            self.instance,
            self.start_ticks,
            self.end_ticks,
            u64::from(self.device) << 32 | u64::from(self.stream),
            self.bytes,
        ]);
        let mut len = GPU_ACTIVITY_WORDS;
        if let Some(t) = self.launch_ticks {
            words[len] = t;
            len += 1;
        }
        if let Some(s) = self.shape {
            // Grid y and z are below 2^16 and block sizes below 2^11 (CUDA's limits).
            words[len] =
                u64::from(s.grid[0]) | u64::from(s.grid[1] & 0xffff) << 32 | u64::from(s.grid[2] & 0xffff) << 48;
            words[len + 1] = u64::from(s.block[0] & 0xffff)
                | u64::from(s.block[1] & 0xffff) << 16
                | u64::from(s.block[2] & 0xffff) << 32;
            len += 2;
        }
        (words, len)
    }

    fn decode(id: u32, flags: u64, rec: &[u64]) -> GpuActivityRecord {
        let mut rest = &rec[GPU_ACTIVITY_WORDS..];
        let launch_ticks = (flags & flag::LAUNCHED != 0).then(|| {
            let t = rest[0];
            rest = &rest[1..];
            t
        });
        let shape = (flags & flag::SHAPE != 0).then(|| {
            let (g, b) = (rest[0], rest[1]);
            let part = |w: u64, shift: u32| (w >> shift & 0xffff) as u32;
            LaunchShape { grid: [g as u32, part(g, 32), part(g, 48)], block: [part(b, 0), part(b, 16), part(b, 32)] }
        });
        GpuActivityRecord {
            name: id,
            work: gpu_work_of(flags),
            instance: rec[1],
            start_ticks: rec[2],
            end_ticks: rec[3],
            device: (rec[4] >> 32) as u32,
            stream: rec[4] as u32,
            bytes: rec[5],
            launch_ticks,
            shape,
        }
    }
}

/// A record that cannot be decoded: the word offset and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// The word of the chunk where decoding failed.
    pub word: usize,
    /// What was wrong with it.
    pub message: String,
}

/// Number of words an END record with these flags takes.
pub const fn end_words(flags: u64) -> usize {
    2 + if flags & flag::HAS_CPU != 0 { 1 } else { 0 } + if flags & flag::HAS_MEM != 0 { 4 } else { 0 }
}

/// Decodes a run of words into records, calling `f` for each one.
///
/// Stops at the first malformed record and reports where it is.
pub fn decode(words: &[u64], mut f: impl FnMut(Record)) -> Result<(), WireError> {
    let mut at = 0;
    while at < words.len() {
        let head = words[at];
        let kind_bits = head & KIND_MASK;
        let flags = head & FLAG_MASK;
        let id = (head >> 32) as u32;
        let len = match kind_bits {
            kind::BEGIN_STAGE | kind::BEGIN_FRAME => BEGIN_WORDS,
            kind::END => end_words(flags),
            kind::COUNTER => COUNTER_WORDS,
            kind::PROCESS_MEM if flags & flag::HAS_LEVEL != 0 => PROCESS_WORDS,
            kind::PROCESS_MEM => PROCESS_WORDS - 1,
            kind::GPU_LINK => GPU_LINK_WORDS,
            kind::GPU_TIME => GPU_TIME_WORDS,
            kind::GPU_ACTIVITY => gpu_activity_words(flags),
            kind::GPU_MEMORY => GPU_MEMORY_WORDS,
            kind::GPU_MEMORY_MARK => GPU_MEMORY_MARK_WORDS,
            kind::KERNEL_TRACE => KERNEL_TRACE_WORDS,
            kind::QUEUE => queue_len(flags),
            kind::TASK => match words.get(at + 6) {
                Some(&depth) if depth as usize <= MAX_TASK_DEPTH => TASK_WORDS + (depth as usize).div_ceil(2),
                Some(&depth) => {
                    return Err(WireError { word: at, message: format!("task record with {depth} ancestors") });
                }
                None => TASK_WORDS,
            },
            other => {
                return Err(WireError { word: at, message: format!("unknown record kind {other}") });
            }
        };
        let Some(rec) = words.get(at..at + len) else {
            return Err(WireError {
                word: at,
                message: format!("record needs {len} words, {} left", words.len() - at),
            });
        };
        f(match kind_bits {
            kind::BEGIN_STAGE | kind::BEGIN_FRAME => Record::Begin {
                name: id,
                ticks: rec[1],
                frame: kind_bits == kind::BEGIN_FRAME,
                sampled: flags & flag::SAMPLED != 0,
            },
            kind::END => {
                let mut rest = &rec[2..];
                let cpu_ns = (flags & flag::HAS_CPU != 0).then(|| {
                    let v = rest[0];
                    rest = &rest[1..];
                    v
                });
                let mem = (flags & flag::HAS_MEM != 0).then(|| HostMem {
                    alloc_bytes: rest[0],
                    allocs: rest[1],
                    peak_bytes: rest[2],
                    net_bytes: rest[3] as i64,
                });
                Record::End { name: id, ticks: rec[1], unwound: flags & flag::UNWOUND != 0, cpu_ns, mem }
            }
            kind::PROCESS_MEM => Record::ProcessMem {
                pool: if flags & flag::GPU_POOL != 0 { MemoryPool::Gpu } else { MemoryPool::Host },
                peak_bytes: rec[1],
                net_bytes: rec[2] as i64,
                end_bytes: rec.get(3).map(|&b| b as i64),
            },
            kind::GPU_LINK => Record::GpuLink { instance: rec[1], timed: flags & flag::UNTIMED == 0 },
            kind::GPU_TIME => Record::GpuTime {
                device: id,
                instance: rec[1],
                elapsed_ns: Some(rec[2]).filter(|_| flags & flag::UNTIMED == 0),
                stream_changed: flags & flag::STREAM_CHANGED != 0,
            },
            kind::GPU_ACTIVITY => Record::GpuActivity(GpuActivityRecord::decode(id, flags, rec)),
            kind::TASK => Record::Task(TaskRecord::decode(id, rec)),
            kind::QUEUE => Record::Queue { name: id, ticks: rec[1], op: queue_record(flags, rec) },
            kind::GPU_MEMORY => Record::GpuMemory {
                device: id,
                ticks: rec[1],
                allocated_bytes: rec[2] as i64,
                reserved_bytes: rec[3],
                edge: flags & (flag::TRACE_START | flag::TRACE_END),
            },
            kind::GPU_MEMORY_MARK => Record::GpuMemoryMark {
                ticks: rec[1],
                trace_off: flags & flag::TRACE_OFF != 0,
                done: flags & flag::TRACE_DONE != 0,
            },
            kind::KERNEL_TRACE => Record::KernelTrace { ticks: rec[1], on: flags & flag::TRACE_START != 0 },
            _ => Record::Counter { name: id, ticks: rec[1], value: f64::from_bits(rec[2]) },
        });
        at += len;
    }
    Ok(())
}

/// Converts the recorder's clock ticks to nanoseconds since the profile's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickScale {
    /// Clock ticks in a second.
    pub ticks_per_second: u64,
    /// Clock ticks at the profile's start.
    pub start_ticks: u64,
}

impl TickScale {
    /// Nanoseconds from the start to `ticks`; ticks before the start read as 0.
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        self.duration_ns(ticks.saturating_sub(self.start_ticks))
    }

    /// A length of `ticks` in nanoseconds.
    #[inline]
    pub fn duration_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.ticks_per_second.max(1))) as u64
    }

    /// The ticks `ns` nanoseconds after the start (the inverse of [`TickScale::ns`], to a tick).
    pub fn ticks(&self, ns: u64) -> u64 {
        let after = u128::from(ns) * u128::from(self.ticks_per_second) / 1_000_000_000;
        self.start_ticks.saturating_add(after.min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with every optional word, at CUDA's largest grid and block.
    const KERNEL: GpuActivityRecord = GpuActivityRecord {
        name: 4,
        work: GpuWork::Kernel,
        instance: 0,
        start_ticks: 310,
        end_ticks: 320,
        device: 0,
        stream: 13,
        bytes: 0,
        launch_ticks: Some(305),
        shape: Some(LaunchShape { grid: [u32::MAX >> 1, 65535, 65535], block: [1024, 1024, 64] }),
    };

    #[test]
    fn round_trips_every_kind() {
        let words = [
            header(kind::BEGIN_FRAME, flag::SAMPLED, 9),
            100,
            header(kind::BEGIN_STAGE, 0, 7),
            110,
            header(kind::COUNTER, 0, 8),
            115,
            2.5f64.to_bits(),
            header(kind::END, flag::HAS_CPU | flag::HAS_MEM | flag::UNWOUND, 7),
            120,
            5,
            64,
            1,
            64,
            (-16i64) as u64,
            header(kind::PROCESS_MEM, 0, 9),
            4096,
            (-8i64) as u64,
            header(kind::PROCESS_MEM, flag::HAS_LEVEL, 9),
            4096,
            (-8i64) as u64,
            1 << 20,
            header(kind::PROCESS_MEM, flag::HAS_LEVEL | flag::GPU_POOL, 9),
            1 << 20,
            0,
            1 << 20,
            header(kind::GPU_LINK, 0, 0),
            42,
            header(kind::GPU_TIME, 0, 1),
            42,
            1500,
            header(kind::GPU_LINK, flag::UNTIMED, 0),
            43,
            header(kind::GPU_TIME, flag::UNTIMED, 1),
            44,
            0,
            header(kind::GPU_ACTIVITY, gpu_work_flags(GpuWork::Copy(CopyKind::DeviceToHost)), 3),
            42,
            200,
            300,
            1 << 32 | 7,
            4096,
        ];
        let (kernel_words, kernel_len) = KERNEL.encode();
        assert_eq!(kernel_len, MAX_GPU_ACTIVITY_WORDS);
        let level = gpu_memory_words(1, flag::TRACE_END, 125, -512, 2 << 20);
        let marks = [
            gpu_memory_mark_words(126, true, false),
            gpu_memory_mark_words(127, false, true),
            kernel_trace_words(128, true),
            kernel_trace_words(129, false),
        ]
        .concat();
        let words =
            [&words[..], &kernel_words[..kernel_len], &level[..], &marks, &[header(kind::END, 0, 9), 130]].concat();
        let mut out = Vec::new();
        decode(&words, |r| out.push(r)).unwrap();
        assert_eq!(
            out,
            vec![
                Record::Begin { name: 9, ticks: 100, frame: true, sampled: true },
                Record::Begin { name: 7, ticks: 110, frame: false, sampled: false },
                Record::Counter { name: 8, ticks: 115, value: 2.5 },
                Record::End {
                    name: 7,
                    ticks: 120,
                    unwound: true,
                    cpu_ns: Some(5),
                    mem: Some(HostMem { alloc_bytes: 64, allocs: 1, peak_bytes: 64, net_bytes: -16 })
                },
                Record::ProcessMem { pool: MemoryPool::Host, peak_bytes: 4096, net_bytes: -8, end_bytes: None },
                Record::ProcessMem {
                    pool: MemoryPool::Host,
                    peak_bytes: 4096,
                    net_bytes: -8,
                    end_bytes: Some(1 << 20)
                },
                Record::ProcessMem {
                    pool: MemoryPool::Gpu,
                    peak_bytes: 1 << 20,
                    net_bytes: 0,
                    end_bytes: Some(1 << 20)
                },
                Record::GpuLink { instance: 42, timed: true },
                Record::GpuTime { device: 1, instance: 42, elapsed_ns: Some(1500), stream_changed: false },
                Record::GpuLink { instance: 43, timed: false },
                Record::GpuTime { device: 1, instance: 44, elapsed_ns: None, stream_changed: false },
                Record::GpuActivity(GpuActivityRecord {
                    name: 3,
                    work: GpuWork::Copy(CopyKind::DeviceToHost),
                    instance: 42,
                    start_ticks: 200,
                    end_ticks: 300,
                    device: 1,
                    stream: 7,
                    bytes: 4096,
                    launch_ticks: None,
                    shape: None,
                }),
                Record::GpuActivity(KERNEL),
                Record::GpuMemory {
                    device: 1,
                    ticks: 125,
                    allocated_bytes: -512,
                    reserved_bytes: 2 << 20,
                    edge: flag::TRACE_END
                },
                Record::GpuMemoryMark { ticks: 126, trace_off: true, done: false },
                Record::GpuMemoryMark { ticks: 127, trace_off: false, done: true },
                Record::KernelTrace { ticks: 128, on: true },
                Record::KernelTrace { ticks: 129, on: false },
                Record::End { name: 9, ticks: 130, unwound: false, cpu_ns: None, mem: None },
            ]
        );
    }

    #[test]
    fn queue_records_round_trip() {
        let ops = [
            QueueRecord::Opened { capacity: Some(4) },
            QueueRecord::Opened { capacity: None },
            QueueRecord::Sent { blocked: 7, depth: Some(3) },
            QueueRecord::Sent { blocked: 0, depth: Some(3) },
            QueueRecord::Received { waited: 9, depth: Some(2), sent: Some(90) },
            QueueRecord::Received { waited: 9, depth: Some(2), sent: None },
            QueueRecord::Received { waited: 0, depth: Some(2), sent: Some(90) },
            QueueRecord::ReceivedAged { waited: 9, depth: 2, residence: Some(1_000), age: Some(5_000) },
            QueueRecord::ReceivedAged { waited: 9, depth: 2, residence: Some(1_000), age: None },
            QueueRecord::ReceivedAged { waited: 9, depth: 2, residence: None, age: None },
            QueueRecord::Sent { blocked: 7, depth: None },
            QueueRecord::Sent { blocked: 0, depth: None },
            QueueRecord::Received { waited: 9, depth: None, sent: Some(90) },
            QueueRecord::Received { waited: 0, depth: None, sent: None },
            QueueRecord::ReceivedAged { waited: 0, depth: 2, residence: Some(1_000), age: Some(5_000) },
        ];
        let mut words = Vec::new();
        for (i, &op) in ops.iter().enumerate() {
            let mut w = [0; MAX_QUEUE_WORDS];
            let len = queue_words(5, 100 + i as u64, op, &mut w);
            words.extend_from_slice(&w[..len]);
        }
        let mut out = Vec::new();
        decode(&words, |r| out.push(r)).unwrap();
        let want: Vec<Record> =
            ops.iter().enumerate().map(|(i, &op)| Record::Queue { name: 5, ticks: 100 + i as u64, op }).collect();
        assert_eq!(out, want);
        // A version 9 receive, as its writer laid it out: residence, then age.
        let v9 = [header(kind::QUEUE, flag::QUEUE_RECEIVED | flag::QUEUE_AGED, 5), 100, 9, 2, 1_000, 5_000];
        let mut out = Vec::new();
        decode(&v9, |r| out.push(r)).unwrap();
        assert_eq!(out, [Record::Queue { name: 5, ticks: 100, op: ops[7] }]);
        // What went through at once takes a word less, and so does a depth not read;
        // odd flags still read within their words.
        let lens = |op| queue_words(5, 100, op, &mut [0; MAX_QUEUE_WORDS]);
        assert_eq!((lens(ops[2]), lens(ops[3]), lens(ops[4]), lens(ops[6])), (4, 3, 5, 4));
        assert_eq!((lens(ops[10]), lens(ops[11]), lens(ops[12]), lens(ops[13])), (3, 2, 4, 2));
        // A receive with no send tick (version 13) carries no word for it; versions 10 to 12 wrote u64::MAX.
        assert_eq!(lens(ops[5]), 4);
        let v12 = [header(kind::QUEUE, flag::QUEUE_RECEIVED | flag::QUEUE_SEND_TICK, 5), 100, 9, 2, u64::MAX];
        let mut out = Vec::new();
        decode(&v12, |r| out.push(r)).unwrap();
        assert_eq!(out, [Record::Queue { name: 5, ticks: 100, op: ops[5] }]);
        let odd = [header(kind::QUEUE, flag::QUEUE_SEND_TICK, 5), 100, 9, 2, 7];
        assert_eq!(decode(&odd, |_| {}).map_err(|e| e.word), Ok(()));
        let odd = [header(kind::QUEUE, flag::QUEUE_AT_ONCE | flag::QUEUE_AGED | flag::QUEUE_RECEIVED, 5), 100, 2, 7, 8];
        assert_eq!(decode(&odd, |_| {}).map_err(|e| e.word), Ok(()));
    }

    #[test]
    fn scales_ticks_without_overflow() {
        let s = TickScale { ticks_per_second: 3_000_000_000, start_ticks: 1_000 };
        assert_eq!(s.ns(1_000 + 3_000), 1_000);
        assert_eq!(s.ns(10), 0);
        assert_eq!(s.ns(1_000 + 3_000_000_000 * 86_400), 86_400_000_000_000);
        assert_eq!(s.ticks(1_000), 1_000 + 3_000);
        assert_eq!(s.ns(s.ticks(86_400_000_000_000)), 86_400_000_000_000);
    }

    #[test]
    fn reports_truncated_and_unknown_records() {
        let err = decode(&[header(kind::END, flag::HAS_MEM, 1), 5, 1], |_| {}).unwrap_err();
        assert_eq!(err.word, 0);
        let err = decode(&[header(kind::BEGIN_STAGE, 0, 1), 5, 0xe], |_| {}).unwrap_err();
        assert_eq!(err, WireError { word: 2, message: "unknown record kind 14".into() });
        let err = decode(&[header(kind::TASK, 0, 1), 1, 2, 3, 4, 5, 33], |_| {}).unwrap_err();
        assert_eq!(err, WireError { word: 0, message: "task record with 33 ancestors".into() });
    }

    #[test]
    fn tasks_round_trip_with_odd_and_even_depths() {
        for depth in [0, 1, 2, 3, MAX_TASK_DEPTH] {
            let mut ancestors = [0u32; MAX_TASK_DEPTH];
            for (i, a) in ancestors[..depth].iter_mut().enumerate() {
                *a = u32::MAX - i as u32;
            }
            let task = TaskRecord {
                name: 7,
                start_ticks: 10,
                end_ticks: 20,
                busy_ns: 3,
                id: u64::MAX,
                parent: 5,
                ancestors,
                depth,
            };
            let (words, len) = task.encode();
            let mut out = Vec::new();
            decode(&words[..len], |r| out.push(r)).unwrap();
            assert_eq!(out, vec![Record::Task(task)], "depth {depth}");
        }
    }
}
