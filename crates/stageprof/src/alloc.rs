//! Host memory per stage: a global allocator that counts, per thread, what
//! is allocated and freed.
//!
//! Counters live in const-initialised thread-locals with no destructor, so
//! touching them never allocates and works at any point of a thread's life.
//! No atomics are shared between threads: one thread's allocations never
//! leak into another thread's stages, and there is no contention. A block
//! freed by a thread other than the one that allocated it counts as a free on
//! the freeing thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

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
    pub const fn system() -> Self {
        TrackingAllocator { inner: System }
    }
}

impl<A> TrackingAllocator<A> {
    pub const fn new(inner: A) -> Self {
        TrackingAllocator { inner }
    }
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether a [`TrackingAllocator`] has served an allocation in this process.
pub fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

struct HeapCounters {
    allocated: Cell<u64>,
    allocs: Cell<u64>,
    live: Cell<i64>,
    peak: Cell<i64>,
}

thread_local! {
    static HEAP: HeapCounters = const {
        HeapCounters { allocated: Cell::new(0), allocs: Cell::new(0), live: Cell::new(0), peak: Cell::new(0) }
    };
}

#[inline(always)]
fn on_alloc(size: usize) {
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
    });
}

#[inline(always)]
fn on_free(size: usize) {
    HEAP.with(|h| h.live.set(h.live.get() - size as i64));
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
    let saved = HEAP.with(|h| (h.allocated.get(), h.allocs.get(), h.live.get(), h.peak.get()));
    let r = f();
    HEAP.with(|h| {
        h.allocated.set(saved.0);
        h.allocs.set(saved.1);
        h.live.set(saved.2);
        h.peak.set(saved.3);
    });
    r
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
