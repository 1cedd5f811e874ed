//! The hot path: per-thread writers appending records to blocks from a
//! bounded pool.
//!
//! Each thread writes into a block of its own, so recording takes no lock.
//! Block words are `AtomicU64` written with relaxed stores (plain moves on
//! x86) and published with one release store of the length, which lets the
//! collector read a half-filled block at any moment (a signal, `finish`)
//! without stopping the writer. A full block goes to the collector through a
//! lock-free queue and the writer takes a free one; when none is free the
//! record is dropped and counted, never waited for. Every begin reserves
//! room for its end, so an end is never dropped.

use std::cell::RefCell;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;

use arc_swap::ArcSwapOption;
use crossbeam_queue::ArrayQueue;
use stageprof_model::wire::{flag, header, kind, COUNTER_WORDS, MAX_BEGIN_WORDS, MAX_END_WORDS};

use crate::alloc::{self, HeapMark, LevelMark};
use crate::clock::ticks;
use crate::config::Config;
use crate::cpu_time::{os_thread_id, thread_cpu_ns};
use crate::sampling::Sampling;

use Ordering::{Acquire, Relaxed, Release};

/// Words per block (128 KiB).
const BLOCK_WORDS: usize = 16 * 1024;
/// Deepest nesting recorded; deeper stages are dropped and counted.
const MAX_OPEN: usize = (BLOCK_WORDS - MAX_BEGIN_WORDS - COUNTER_WORDS) / MAX_END_WORDS - 1;

/// A run of record words written by one thread.
pub(crate) struct Block {
    pub words: Box<[AtomicU64]>,
    /// Words written and published by the owner.
    pub len: AtomicUsize,
    /// Words already read by the collector (only the collector touches it).
    pub consumed: AtomicUsize,
    pub thread: AtomicU32,
    /// Position of this block among its thread's blocks, so the collector reads them in order.
    pub seq: AtomicU64,
}

impl Block {
    fn new() -> Block {
        Block {
            words: (0..BLOCK_WORDS).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
            consumed: AtomicUsize::new(0),
            thread: AtomicU32::new(0),
            seq: AtomicU64::new(0),
        }
    }
}

/// A recording thread, as the collector sees it.
pub(crate) struct ThreadSlot {
    pub index: u32,
    pub os_tid: u64,
    pub name: String,
    /// The block the thread is writing now.
    pub current: ArcSwapOption<Block>,
}

/// State shared by a profiler's threads, its collector and its handles.
pub(crate) struct Shared {
    /// Profiler ids count up from 1 (2^31 profilers per process are plenty).
    pub id: u32,
    pub global: bool,
    pub config: Config,
    /// Master switch (set at run time, or off once finished).
    pub enabled: AtomicBool,
    /// Enabled and not inside an unsampled frame: the one load a stage makes.
    pub recording: AtomicBool,
    pub memory: bool,
    pub cpu_time: bool,
    pub sampling: Sampling,
    pub frames: AtomicU64,
    free: ArrayQueue<Arc<Block>>,
    pub full: ArrayQueue<Arc<Block>>,
    blocks_created: AtomicUsize,
    max_blocks: usize,
    pub threads: Mutex<Vec<Arc<ThreadSlot>>>,
    pub dropped: AtomicU64,
    pub collector: OnceLock<Thread>,
    pub stop: AtomicBool,
    /// The thread that started the profiler: it drives the pipeline, and
    /// its stages also measure the heap of all threads.
    driver: u64,
    /// Why recording ended: `finish`, a signal name, `panic`.
    end_reason: Mutex<String>,
    /// The GPU side, when CUDA profiling runs.
    #[cfg(feature = "cuda")]
    pub gpu: OnceLock<Arc<crate::cuda::stage_gpu::GpuState>>,
    /// Since when (ticks; 0: never) a front door has written GPU allocator
    /// levels, which a profile summed up while recording waits for.
    pub gpu_memory_since: AtomicU64,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// Mirror of the global profiler's `recording`, so a disabled stage costs one load.
pub(crate) static GLOBAL_RECORDING: AtomicBool = AtomicBool::new(false);
static GLOBAL_ID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// The name a front door gave this thread, for when it first records.
    static GIVEN_NAME: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Names this thread for when it first records, where Rust knows no name for it.
pub(crate) fn give_thread_name(name: String) {
    GIVEN_NAME.with(|n| *n.borrow_mut() = Some(name));
}

/// The current thread's name: Rust's, else the one a front door gave it, else empty.
fn thread_name() -> String {
    let given = || GIVEN_NAME.with(|n| n.borrow().clone());
    std::thread::current().name().map(str::to_owned).or_else(given).unwrap_or_default()
}

static GLOBAL: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

impl Shared {
    pub(crate) fn new(config: Config, global: bool) -> Arc<Shared> {
        let max_blocks = ((config.buffer_mb as usize) << 20) / (BLOCK_WORDS * 8);
        let max_blocks = max_blocks.max(1);
        Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Relaxed),
            global,
            memory: config.memory && alloc::installed(),
            cpu_time: config.cpu_time,
            sampling: Sampling::from_config(&config),
            enabled: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            free: ArrayQueue::new(max_blocks),
            full: ArrayQueue::new(max_blocks),
            blocks_created: AtomicUsize::new(0),
            max_blocks,
            threads: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            collector: OnceLock::new(),
            stop: AtomicBool::new(false),
            driver: os_thread_id(),
            end_reason: Mutex::new("finish".into()),
            #[cfg(feature = "cuda")]
            gpu: OnceLock::new(),
            gpu_memory_since: AtomicU64::new(0),
            config,
        })
    }

    /// Makes this the profiler that the free functions (`stage`, `scope!`, ...) record to.
    pub(crate) fn install_global(self: &Arc<Shared>) {
        *GLOBAL.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.clone());
        GLOBAL_ID.store(self.id, Release);
    }

    /// The global profiler, if one is running.
    pub(crate) fn global() -> Option<Arc<Shared>> {
        GLOBAL.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Holds the lock of the global profiler's slot (across a `fork`).
    pub(crate) fn hold_global() -> Box<dyn std::any::Any> {
        Box::new(GLOBAL.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops being the global profiler, if it is.
    pub(crate) fn uninstall_global(&self) {
        let mut g = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
        if g.as_ref().is_some_and(|s| s.id == self.id) {
            *g = None;
            GLOBAL_RECORDING.store(false, Relaxed);
        }
    }

    pub(crate) fn set_recording(&self, on: bool) {
        self.recording.store(on, Relaxed);
        if self.global && GLOBAL_ID.load(Relaxed) == self.id {
            GLOBAL_RECORDING.store(on, Relaxed);
        }
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
        self.set_recording(on);
    }

    pub(crate) fn set_end_reason(&self, reason: &str) {
        *self.end_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason.to_owned();
    }

    pub(crate) fn end_reason(&self) -> String {
        self.end_reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn take_block(&self) -> Option<Arc<Block>> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        let n = self.blocks_created.fetch_add(1, Relaxed);
        if n < self.max_blocks {
            return Some(Arc::new(Block::new()));
        }
        self.blocks_created.fetch_sub(1, Relaxed);
        None
    }

    /// Returns a consumed block to the pool.
    pub(crate) fn recycle(&self, b: Arc<Block>) {
        b.len.store(0, Relaxed);
        b.consumed.store(0, Relaxed);
        // The pool holds at most `max_blocks`, so this cannot fail.
        let _ = self.free.push(b);
    }

    /// Frees pooled blocks once nothing more will be recorded.
    pub(crate) fn release_pool(&self) {
        while self.free.pop().is_some() {}
    }

    fn hand_off(&self, b: Arc<Block>) {
        // `full` has room for every block that exists.
        let _ = self.full.push(b);
        if let Some(c) = self.collector.get() {
            c.unpark();
        }
    }

    fn register_thread(&self) -> Arc<ThreadSlot> {
        let name = thread_name();
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = Arc::new(ThreadSlot {
            index: threads.len() as u32,
            os_tid: os_thread_id(),
            name,
            current: ArcSwapOption::empty(),
        });
        threads.push(slot.clone());
        slot
    }
}

/// A stage or frame that was recorded as begun: which writer ends it, and
/// its name. Packed in one word (profiler id, global flag, name id) so a
/// guard travels in a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenSpan(NonZeroU64);

impl OpenSpan {
    fn new(profiler: NonZeroU32, global: bool, name: u32) -> OpenSpan {
        let word = u64::from(profiler.get()) << 33 | u64::from(global) << 32 | u64::from(name);
        OpenSpan(NonZeroU64::new(word).expect("profiler ids are not zero"))
    }
    fn profiler(self) -> u32 {
        (self.0.get() >> 33) as u32
    }
    fn global(self) -> bool {
        self.0.get() >> 32 & 1 == 1
    }
    fn name(self) -> u32 {
        self.0.get() as u32
    }
}

/// What a writer keeps of a begun span until its end, when it measures
/// memory or CPU time (otherwise it keeps nothing).
struct Pending {
    mem: Option<HeapMark>,
    process: Option<LevelMark>,
    cpu_start: u64,
    #[cfg(feature = "cuda")]
    gpu: Option<crate::cuda::stage_gpu::GpuOpen>,
}

/// One thread's writer for one profiler.
pub(crate) struct ThreadWriter {
    pub shared: Arc<Shared>,
    // Copies of `shared`'s fixed fields, to spare the hot path a pointer chase.
    id: NonZeroU32,
    global: bool,
    memory: bool,
    cpu_time: bool,
    /// Memory is measured and this thread drives the pipeline.
    process_memory: bool,
    /// The GPU side of the session, if CUDA profiling runs.
    #[cfg(feature = "cuda")]
    gpu: Option<Arc<crate::cuda::stage_gpu::GpuState>>,
    /// This thread drives the pipeline and GPU memory is counted (its stages measure GPU memory).
    #[cfg(feature = "cuda")]
    gpu_memory: bool,
    /// GPU profiling starts on demand: look for it until it has.
    #[cfg(feature = "cuda")]
    gpu_on_demand: bool,
    slot: Arc<ThreadSlot>,
    block: Option<Arc<Block>>,
    pos: usize,
    /// Begun spans whose end is still to be written (each has room reserved).
    open: usize,
    /// Their start measurements, innermost last (empty unless memory or CPU time is on).
    pending: Vec<Pending>,
    seq: u64,
}

impl ThreadWriter {
    fn new(shared: Arc<Shared>) -> ThreadWriter {
        let slot = alloc::untracked(|| shared.register_thread());
        ThreadWriter {
            id: NonZeroU32::new(shared.id).expect("profiler ids start at 1"),
            global: shared.global,
            memory: shared.memory,
            cpu_time: shared.cpu_time,
            process_memory: shared.memory && os_thread_id() == shared.driver,
            #[cfg(feature = "cuda")]
            gpu: shared.gpu.get().cloned(),
            #[cfg(feature = "cuda")]
            gpu_memory: shared.config.gpu_memory && os_thread_id() == shared.driver,
            #[cfg(feature = "cuda")]
            gpu_on_demand: shared.config.gpu_on_demand,
            open: 0,
            pending: alloc::untracked(|| Vec::with_capacity(64)),
            shared,
            slot,
            block: None,
            pos: 0,
            seq: 0,
        }
    }

    /// The session (profiler) this writer records into; a new session, a new id.
    #[inline(always)]
    pub(crate) fn session(&self) -> u32 {
        self.id.get()
    }

    /// Makes room for `need` words, changing blocks if this one is full.
    #[inline]
    fn reserve(&mut self, need: usize) -> bool {
        if self.block.is_some() && self.pos + need <= BLOCK_WORDS {
            return true;
        }
        self.next_block(need)
    }

    #[cold]
    fn next_block(&mut self, need: usize) -> bool {
        if need > BLOCK_WORDS {
            return false;
        }
        // Without a new block, the current one keeps its reserved room for pending ends.
        let Some(new) = alloc::untracked(|| self.shared.take_block()) else { return false };
        new.thread.store(self.slot.index, Relaxed);
        new.seq.store(self.seq, Relaxed);
        self.seq += 1;
        // Hand off before publishing the new block, so the collector never sees a later block first.
        if let Some(old) = self.block.replace(new.clone()) {
            self.shared.hand_off(old);
        }
        self.slot.current.store(Some(new));
        self.pos = 0;
        true
    }

    /// Appends one record. Its size is known at compile time, so this is one
    /// bounds check and N plain stores.
    #[inline(always)]
    fn write<const N: usize>(&mut self, words: [u64; N]) {
        self.write_slice(&words);
    }

    #[inline(always)]
    fn write_slice(&mut self, words: &[u64]) {
        let Some(b) = &self.block else { return };
        let Some(dst) = b.words.get(self.pos..self.pos + words.len()) else { return };
        for (d, &w) in dst.iter().zip(words) {
            d.store(w, Relaxed);
        }
        self.pos += words.len();
        b.len.store(self.pos, Release);
    }

    #[cold]
    fn drop_record(&self) {
        self.shared.dropped.fetch_add(1, Relaxed);
    }

    /// Records a begin of `kind` (stage or frame); `None` if it had to be dropped.
    #[inline(always)]
    pub(crate) fn begin(&mut self, record_kind: u64, flags: u64, name: u32) -> Option<OpenSpan> {
        if self.open >= MAX_OPEN || !self.reserve(MAX_BEGIN_WORDS + (self.open + 1) * MAX_END_WORDS) {
            self.drop_record();
            return None;
        }
        self.open += 1;
        #[cfg(feature = "cuda")]
        if self.gpu_on_demand && self.gpu.is_none() {
            // GPU profiling may have started after this thread's first stage.
            self.gpu = self.shared.gpu.get().cloned();
        }
        if self.memory || self.cpu_time || self.has_gpu() {
            self.push_pending(name);
        }
        self.write([header(record_kind, flags, name), ticks()]);
        #[cfg(feature = "cuda")]
        if let Some(gpu) = self.pending.last().and_then(|p| p.gpu.as_ref()) {
            let untimed = if gpu.timed() { 0 } else { flag::UNTIMED };
            self.write([header(kind::GPU_LINK, untimed, 0), gpu.instance]);
        }
        Some(OpenSpan::new(self.id, self.global, name))
    }

    #[inline(always)]
    fn has_gpu(&self) -> bool {
        #[cfg(feature = "cuda")]
        return self.gpu.is_some();
        #[cfg(not(feature = "cuda"))]
        false
    }

    /// Records a whole record its caller laid out (a queue operation, a
    /// front door's, the GPU thread's, a closed tracing span's); `None` if it
    /// had to be dropped. Inlined into each caller's thread-local access: on
    /// the queue's hot path that access is itself inlined, and the record
    /// folds to a few stores.
    #[inline(always)]
    pub(crate) fn record(&mut self, words: &[u64]) -> Option<()> {
        if !self.reserve(words.len() + self.open * MAX_END_WORDS) {
            self.drop_record();
            return None;
        }
        self.write_slice(words);
        Some(())
    }

    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    fn push_pending(&mut self, name: u32) {
        if self.pending.len() == self.pending.capacity() {
            alloc::untracked(|| self.pending.reserve(self.pending.len()));
        }
        #[cfg(feature = "cuda")]
        let gpu = self
            .gpu
            .as_ref()
            .map(|g| alloc::untracked(|| g.begin(name, || crate::names::name(name).to_string(), self.gpu_memory)));
        let mem = if self.memory { Some(alloc::mark()) } else { None };
        let process = if self.process_memory { Some(alloc::mark_process()) } else { None };
        let cpu_start = if self.cpu_time { thread_cpu_ns() } else { 0 };
        self.pending.push(Pending {
            mem,
            process,
            cpu_start,
            #[cfg(feature = "cuda")]
            gpu,
        });
    }

    /// Records the end of the innermost begun span, in the room its begin reserved.
    #[inline(always)]
    pub(crate) fn end(&mut self, name: u32, unwound: bool) {
        let t = ticks();
        if self.open == 0 {
            return;
        }
        self.open -= 1;
        let (cpu, mem) = match self.pending.pop() {
            Some(p) => {
                let mem = p.mem.map(alloc::measure);
                if let Some(d) = p.process.map(alloc::measure_process) {
                    self.write_level(flag::HAS_LEVEL, name, d);
                }
                #[cfg(feature = "cuda")]
                if let Some(d) = p.gpu.and_then(|open| self.gpu.as_ref().and_then(|g| alloc::untracked(|| g.end(open))))
                {
                    self.write_level(flag::HAS_LEVEL | flag::GPU_POOL, name, d);
                }
                (self.cpu_time.then(|| thread_cpu_ns().saturating_sub(p.cpu_start)), mem)
            }
            None => (None, None),
        };
        let flags = if unwound { flag::UNWOUND } else { 0 };
        let h = |extra: u64| header(kind::END, flags | extra, name);
        // One arm per record layout (see stageprof_model::wire), so each is a fixed-size write.
        match (cpu, mem) {
            (None, None) => self.write([h(0), t]),
            (None, Some(m)) => {
                self.write([h(flag::HAS_MEM), t, m.alloc_bytes, m.allocs, m.peak_bytes, m.net_bytes as u64])
            }
            (Some(c), None) => self.write([h(flag::HAS_CPU), t, c]),
            (Some(c), Some(m)) => self.write([
                h(flag::HAS_CPU | flag::HAS_MEM),
                t,
                c,
                m.alloc_bytes,
                m.allocs,
                m.peak_bytes,
                m.net_bytes as u64,
            ]),
        }
    }

    fn write_level(&mut self, flags: u64, name: u32, d: stageprof_model::MemDelta) {
        let head = header(kind::PROCESS_MEM, flags, name);
        self.write([head, d.peak_bytes, d.net_bytes as u64, d.end_bytes.unwrap_or(0) as u64]);
    }

    /// Records a counter sample; `None` if it had to be dropped.
    #[inline]
    pub(crate) fn counter(&mut self, name: u32, value: f64) -> Option<()> {
        if !self.reserve(COUNTER_WORDS + self.open * MAX_END_WORDS) {
            self.drop_record();
            return None;
        }
        self.write([header(kind::COUNTER, 0, name), ticks(), value.to_bits()]);
        Some(())
    }
}

impl Drop for ThreadWriter {
    fn drop(&mut self) {
        // The thread is ending: give its last block to the collector.
        self.slot.current.store(None);
        if let Some(b) = self.block.take() {
            self.shared.hand_off(b);
        }
    }
}

/// A thread's writers: for the global profiler, and for explicit instances.
struct Local {
    global: Option<ThreadWriter>,
    others: Vec<ThreadWriter>,
}

thread_local! {
    // Const-initialised: an access is a TLS offset, no lazy-init check.
    static LOCAL: RefCell<Local> = const { RefCell::new(Local { global: None, others: Vec::new() }) };
}

/// Which profiler a call records to.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Global,
    Instance(&'a Arc<Shared>),
}

impl Local {
    /// The writer for `target`, created on this thread's first use.
    #[inline]
    fn writer(&mut self, target: Target<'_>) -> Option<&mut ThreadWriter> {
        match target {
            Target::Global => {
                let id = GLOBAL_ID.load(Acquire);
                if self.global.as_ref().map(|w| w.id.get()) != Some(id) {
                    self.replace_global();
                }
                self.global.as_mut()
            }
            Target::Instance(shared) => {
                if let Some(i) = self.others.iter().position(|w| w.id.get() == shared.id) {
                    return Some(&mut self.others[i]);
                }
                self.add_writer(shared);
                self.others.last_mut()
            }
        }
    }

    // The two writer changes are out of line: dropping and making a writer is
    // long code that would otherwise bloat every recording call's fast path.

    /// A writer for the global session now installed (none if there is none).
    #[cold]
    #[inline(never)]
    fn replace_global(&mut self) {
        self.global = alloc::untracked(|| Shared::global().map(ThreadWriter::new));
    }

    /// A writer for the profiler `shared`, last in `others`, after the stopped ones go.
    #[cold]
    #[inline(never)]
    fn add_writer(&mut self, shared: &Arc<Shared>) {
        alloc::untracked(|| {
            self.others.retain(|w| !w.shared.stop.load(Relaxed));
            self.others.push(ThreadWriter::new(shared.clone()));
        });
    }

    /// The writer an open span was recorded by, if it still exists.
    #[inline]
    fn writer_of(&mut self, span: OpenSpan) -> Option<&mut ThreadWriter> {
        let id = span.profiler();
        if span.global() {
            self.global.as_mut().filter(|w| w.id.get() == id)
        } else {
            self.others.iter_mut().find(|w| w.id.get() == id)
        }
    }
}

/// Runs `f` with this thread's writer for `target`; `None` during thread teardown.
#[inline(always)]
pub(crate) fn with_writer<R>(target: Target<'_>, f: impl FnOnce(&mut ThreadWriter) -> Option<R>) -> Option<R> {
    LOCAL.try_with(|l| l.borrow_mut().writer(target).and_then(f)).ok().flatten()
}

/// Ends `span` on the writer that began it.
#[inline(never)]
pub(crate) fn end_span(span: OpenSpan, unwound: bool) {
    let _ = LOCAL.try_with(|l| {
        if let Some(w) = l.borrow_mut().writer_of(span) {
            w.end(span.name(), unwound);
        }
    });
}
