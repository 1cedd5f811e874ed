//! Host memory per stage: a global allocator that counts, per thread, what
//! is allocated and freed.
//!
//! Counters live in const-initialised thread-locals with no destructor, so
//! touching them never allocates and works at any point of a thread's life.
//! One thread's allocations never leak into another thread's stages, and
//! there is no contention. A block freed by a thread other than the one that
//! allocated it counts as a free on the freeing thread.
//!
//! Besides, each thread adds its allocations into a process-wide total in
//! batches of [`PROCESS_FLUSH_BYTES`] (one atomic add per batch, not per
//! allocation), so the stages of the thread that drives the pipeline can
//! also report the heap of all threads while they run: the work they hand
//! to thread pools included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

/// Wraps an allocator (the system one by default) and counts allocations per
/// thread, so stages can report bytes allocated, peak and net live bytes.
///
/// ```
/// #[global_allocator]
/// static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();
/// # fn main() {}
/// ```
pub struct TrackingAllocator<A = System> {
    inner: A,
}

impl TrackingAllocator<System> {
    /// Tracks the system allocator.
    pub const fn system() -> Self {
        TrackingAllocator { inner: System }
    }
}

impl<A> TrackingAllocator<A> {
    /// Tracks `inner`.
    pub const fn new(inner: A) -> Self {
        TrackingAllocator { inner }
    }
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether a [`TrackingAllocator`] has served an allocation in this process
/// (or another heap is counted, see [`crate::foreign::count_alloc`]).
pub(crate) fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// Says that a heap is counted though no [`TrackingAllocator`] is installed.
pub(crate) fn set_installed() {
    INSTALLED.store(true, Relaxed);
}

struct HeapCounters {
    allocated: Cell<u64>,
    allocs: Cell<u64>,
    live: Cell<i64>,
    peak: Cell<i64>,
    /// Bytes allocated (or freed, negative) not yet added to the process total.
    pending: Cell<i64>,
}

thread_local! {
    static HEAP: HeapCounters = const {
        HeapCounters {
            allocated: Cell::new(0),
            allocs: Cell::new(0),
            live: Cell::new(0),
            peak: Cell::new(0),
            pending: Cell::new(0),
        }
    };
}

/// A thread adds its allocations to the process total once they reach this
/// many bytes (either way): the process figures are exact to this much per thread.
pub const PROCESS_FLUSH_BYTES: i64 = 64 << 10;

/// An allocator's bytes in use and their peak since the innermost open window.
pub(crate) struct Level {
    live: AtomicI64,
    peak: AtomicI64,
}

/// A level at a window's start, for [`Level::measure`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct LevelMark {
    live: i64,
    outer_peak: i64,
}

impl Level {
    const fn new() -> Level {
        Level { live: AtomicI64::new(0), peak: AtomicI64::new(0) }
    }

    #[inline]
    pub(crate) fn add(&self, bytes: i64) {
        let live = self.live.fetch_add(bytes, Relaxed) + bytes;
        if live > self.peak.load(Relaxed) {
            self.peak.fetch_max(live, Relaxed);
        }
    }

    /// Starts a window: the peak restarts from the current level. Only one
    /// thread's stages open windows, so windows nest.
    pub(crate) fn mark(&self) -> LevelMark {
        let live = self.live.load(Relaxed);
        LevelMark { live, outer_peak: self.peak.swap(live, Relaxed) }
    }

    /// Ends a window: the peak and net since its start, and the level now;
    /// the enclosing window's peak is restored.
    pub(crate) fn measure(&self, m: LevelMark) -> stageprof_model::MemDelta {
        let live = self.live.load(Relaxed);
        let peak = self.peak.fetch_max(m.outer_peak, Relaxed).max(live);
        stageprof_model::MemDelta {
            peak_bytes: (peak - m.live).max(0) as u64,
            net_bytes: live - m.live,
            end_bytes: Some(live),
        }
    }
}

/// All threads' heap (flushed in steps of [`PROCESS_FLUSH_BYTES`]).
static PROCESS_LEVEL: Level = Level::new();
/// GPU memory allocated through `stageprof::cuda`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) static GPU_LEVEL: Level = Level::new();

/// Adds the calling thread's pending bytes to the process total.
#[inline]
fn flush_pending(h: &HeapCounters) {
    let pending = h.pending.replace(0);
    if pending != 0 {
        PROCESS_LEVEL.add(pending);
    }
}

#[inline(always)]
fn add_pending(h: &HeapCounters, bytes: i64) {
    let pending = h.pending.get() + bytes;
    h.pending.set(pending);
    if pending.abs() >= PROCESS_FLUSH_BYTES {
        flush_pending(h);
    }
}

#[inline(always)]
pub(crate) fn on_alloc(size: usize) {
    if !INSTALLED.load(Relaxed) {
        INSTALLED.store(true, Relaxed);
    }
    HEAP.with(|h| {
        h.allocated.set(h.allocated.get() + size as u64);
        h.allocs.set(h.allocs.get() + 1);
        let live = h.live.get() + size as i64;
        h.live.set(live);
        if live > h.peak.get() {
            h.peak.set(live);
        }
        add_pending(h, size as i64);
    });
}

#[inline(always)]
pub(crate) fn on_free(size: usize) {
    HEAP.with(|h| {
        h.live.set(h.live.get() - size as i64);
        add_pending(h, -(size as i64));
    });
}

// SAFETY: every method forwards to the inner allocator with the caller's
// arguments unchanged and returns its result; the counting touches only
// thread-local cells and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for TrackingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

/// Runs `f` (the recorder's own slow path: a new block, a new name) without
/// its allocations counting toward the thread's stages.
pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    let saved = HEAP.with(|h| (h.allocated.get(), h.allocs.get(), h.live.get(), h.peak.get(), h.pending.get()));
    let r = f();
    HEAP.with(|h| {
        h.allocated.set(saved.0);
        h.allocs.set(saved.1);
        h.live.set(saved.2);
        h.peak.set(saved.3);
        // What `f` flushed to the process total stays there: a few recorder blocks at most.
        h.pending.set(saved.4);
    });
    r
}

/// Starts a process-wide memory window (see [`Level::mark`]).
pub(crate) fn mark_process() -> LevelMark {
    HEAP.with(flush_pending);
    PROCESS_LEVEL.mark()
}

/// Ends a process-wide window: the peak and net of all threads' heap since its start.
pub(crate) fn measure_process(m: LevelMark) -> stageprof_model::MemDelta {
    HEAP.with(flush_pending);
    PROCESS_LEVEL.measure(m)
}

/// The calling thread's counters at a stage's start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeapMark {
    allocated: u64,
    allocs: u64,
    live: i64,
    outer_peak: i64,
}

/// Starts a stage's memory window: the thread's peak restarts from its live bytes.
#[inline(always)]
pub(crate) fn mark() -> HeapMark {
    HEAP.with(|h| {
        let live = h.live.get();
        let m = HeapMark { allocated: h.allocated.get(), allocs: h.allocs.get(), live, outer_peak: h.peak.get() };
        h.peak.set(live);
        m
    })
}

/// Ends a stage's memory window and restores the enclosing stage's peak.
#[inline(always)]
pub(crate) fn measure(m: HeapMark) -> stageprof_model::HostMem {
    HEAP.with(|h| {
        let peak = h.peak.get();
        h.peak.set(peak.max(m.outer_peak));
        stageprof_model::HostMem {
            alloc_bytes: h.allocated.get() - m.allocated,
            allocs: h.allocs.get() - m.allocs,
            peak_bytes: (peak - m.live).max(0) as u64,
            net_bytes: h.live.get() - m.live,
        }
    })
}
