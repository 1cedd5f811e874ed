//! The recorder as front doors in other languages see it (the Python
//! package): names are interned once into ids the caller caches, and a stage
//! is begun into a token that the caller hands back to end it, because a
//! guard cannot live in a foreign object. Everything records to the global
//! session, on the calling thread, at the cost of a Rust stage.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;

use stageprof_model::wire::{flag, gpu_memory_mark_words, gpu_memory_words, kind, TaskRecord, MAX_TASK_DEPTH};

use crate::clock_map::{Anchor, ClockMap};
use crate::names;
use crate::recorder::{end_span, with_writer, OpenSpan, Shared, Target, GLOBAL_RECORDING};

/// A stage begun on this thread, to be ended on it by [`end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenStage(OpenSpan);

static FRONT_DOOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
/// The process's rank in a distributed job; `u32::MAX` while unknown.
static RANK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// Says which rank of a distributed job this process is (torch.distributed's),
/// for sessions started from now on: their profiles say it, and reports of
/// several ranks show them side by side by number.
pub fn set_rank(rank: u32) {
    RANK.store(rank, Relaxed);
}

/// Names the current thread for the profile, where Rust knows no name for
/// it (Python's `threading` names are not the OS's); takes effect if the
/// thread has not recorded yet.
pub fn name_current_thread(name: String) {
    crate::recorder::give_thread_name(name);
}

/// The rank set by [`set_rank`], if any.
pub(crate) fn rank() -> Option<u32> {
    Some(RANK.load(Relaxed)).filter(|&r| r != u32::MAX)
}

/// Names the front door that records (`"python"`): the profile's `source`
/// becomes `stageprof (python)`, and the report's hints speak its language.
pub fn set_front_door(name: &'static str) {
    let _ = FRONT_DOOR.set(name);
}

/// The profile's `source`: `stageprof`, or `stageprof (<front door>)`.
pub(crate) fn source() -> String {
    match FRONT_DOOR.get() {
        Some(door) => format!("stageprof ({door})"),
        None => "stageprof".into(),
    }
}

/// The id of `name` in the process's name table (the same name, the same id).
pub fn name_id(name: &str) -> u32 {
    names::intern(name)
}

/// Begins a stage of the global session; `None` while it does not record.
#[inline]
pub fn begin(name: u32) -> Option<OpenStage> {
    if !GLOBAL_RECORDING.load(Relaxed) {
        return None;
    }
    with_writer(Target::Global, |w| w.begin(kind::BEGIN_STAGE, 0, name)).map(OpenStage)
}

/// Ends a stage; `unwound` marks one left by an exception.
#[inline]
pub fn end(stage: OpenStage, unwound: bool) {
    end_span(stage.0, unwound);
}

/// Records a sample of counter `name`.
pub fn counter(name: u32, value: f64) {
    if GLOBAL_RECORDING.load(Relaxed) {
        with_writer(Target::Global, |w| w.counter(name, value));
    }
}

thread_local! {
    /// Locks held by this thread from just before a `fork` to just after it.
    static HELD_FOR_FORK: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Call just before `fork` (Python: `os.register_at_fork(before=...)`):
/// takes the locks a child could otherwise inherit taken by a thread that
/// did not survive the fork (the global slot, the name table).
pub fn before_fork() {
    let held = [crate::recorder::Shared::hold_global(), names::hold_table()];
    HELD_FOR_FORK.with(|h| h.borrow_mut().extend(held));
}

/// Call just after `fork`, in the parent and in the child: lets the locks go.
pub fn after_fork() {
    HELD_FOR_FORK.with(|h| h.borrow_mut().clear());
}

/// In a child made by `fork`: the global session's threads stayed in the
/// parent, so it is let go without writing anything, and the child records
/// nothing until it starts a session of its own.
pub fn abandon_after_fork() {
    if let Some(shared) = crate::recorder::Shared::global() {
        shared.set_enabled(false);
        shared.uninstall_global();
    }
}

/// Says that a heap is counted through [`count_alloc`] and [`count_free`],
/// so that sessions started from now on measure host memory per stage.
pub fn counting_heap() {
    crate::alloc::set_installed();
}

/// Counts `bytes` allocated on this thread by an allocator stageprof does
/// not wrap (the C heap seen from Python), as [`crate::TrackingAllocator`]
/// counts Rust's: per-stage host memory then includes it. Never allocates.
#[inline]
pub fn count_alloc(bytes: usize) {
    crate::alloc::on_alloc(bytes);
}

/// Counts `bytes` freed on this thread (see [`count_alloc`]).
#[inline]
pub fn count_free(bytes: usize) {
    crate::alloc::on_free(bytes);
}

/// The recorder's clock now, in ticks (for [`task`]).
#[inline]
pub fn now_ticks() -> u64 {
    crate::clock::ticks()
}

/// A stage that may span awaits (an asyncio task's), closed: one call from
/// `start_ticks` to `end_ticks`, running `busy_ticks` of it, written at once
/// so that other tasks' stages in between cannot break its nesting. `id`
/// names it for its children (`parent`, 0 for none); `ancestors` are the
/// names of the stages around it, outermost first (the deepest 32 kept).
pub fn task(name: u32, start_ticks: u64, end_ticks: u64, busy_ticks: u64, id: u64, parent: u64, ancestors: &[u32]) {
    if !GLOBAL_RECORDING.load(Relaxed) {
        return;
    }
    let kept = &ancestors[ancestors.len().saturating_sub(MAX_TASK_DEPTH)..];
    let mut names = [0u32; MAX_TASK_DEPTH];
    names[..kept.len()].copy_from_slice(kept);
    let record = TaskRecord {
        name,
        start_ticks,
        end_ticks,
        busy_ns: crate::clock::ticks_to_ns(busy_ticks),
        id,
        parent,
        ancestors: names,
        depth: kept.len(),
    };
    let (words, len) = record.encode();
    with_writer(Target::Global, |w| w.record(&words[..len]));
}

/// A GPU allocator's levels on `device` after each of its events, from the
/// allocator's own trace (torch's caching allocator), in the order they
/// happened: see [`GpuMemoryLevel`]. The times are wall-clock, as that trace
/// gives them, and recent (the clock's rate is trusted over the distance
/// back to them, which reads a second apart keep to microseconds at most).
pub fn gpu_memory(device: u32, levels: &[GpuMemoryLevel]) {
    if !GLOBAL_RECORDING.load(Relaxed) || levels.is_empty() {
        return;
    }
    let to_ticks = unix_to_ticks();
    let ticks = placed(levels.iter().map(|l| (to_ticks(l.unix_ns), l.between_ticks)));
    for (l, ticks) in levels.iter().zip(ticks) {
        let words = gpu_memory_words(device, l.edge.flag(), ticks, l.allocated_bytes, l.reserved_bytes);
        with_writer(Target::Global, |w| w.record(&words));
    }
}

/// The ticks of levels given in the order their events happened, each as
/// `(ticks by its wall-clock time, the ticks it lies strictly between)`:
/// every one inside its bounds, and none before the one ahead of it. A
/// level's bounds hold for those around it too (what happened before it
/// happened before its upper bound), so each is tightened by its
/// neighbours' first; then a time outside moves to the nearest tick inside.
fn placed(levels: impl ExactSizeIterator<Item = (u64, Option<(u64, u64)>)>) -> Vec<u64> {
    let (mut ticks, mut lower, mut upper) = (Vec::new(), Vec::new(), Vec::new());
    for (t, between) in levels {
        let (after, before) = between.unwrap_or((0, u64::MAX));
        ticks.push(t);
        lower.push(after.saturating_add(1).max(lower.last().copied().unwrap_or(0)));
        upper.push(before.saturating_sub(1));
    }
    for i in (1..upper.len()).rev() {
        upper[i - 1] = upper[i - 1].min(upper[i]);
    }
    let mut last = 0;
    for (i, t) in ticks.iter_mut().enumerate() {
        // Where the bounds disagree (they cannot, from one clock), the upper one wins.
        *t = (*t).max(lower[i]).min(upper[i]).max(last);
        last = *t;
    }
    ticks
}

/// Recent wall-clock times (ns since the Unix epoch) to clock ticks.
fn unix_to_ticks() -> impl Fn(u64) -> u64 {
    let map = ClockMap::new(Anchor::now(crate::clock::unix_ns));
    move |unix_ns| map.ticks(unix_ns)
}

/// A producer of GPU allocator levels ([`gpu_memory`]) starts in the global
/// session. From now on a profile summed up while recording (bounded, see
/// `max_disk_mb`) holds each call back until [`gpu_memory_mark`] says the
/// levels up to its end are written, so call this before its first level,
/// and end with a mark that says `done`.
pub fn gpu_memory_producer_starts() {
    if let Some(shared) = Shared::global() {
        shared.gpu_memory_since.store(crate::clock::ticks().max(1), std::sync::atomic::Ordering::Release);
    }
}

/// Every GPU allocator level up to `unix_ns` (ns since the Unix epoch) has
/// been given to [`gpu_memory`]; `trace_off`: the allocator's trace was off
/// then; `done`: no level will follow.
pub fn gpu_memory_mark(unix_ns: u64, trace_off: bool, done: bool) {
    if !GLOBAL_RECORDING.load(Relaxed) {
        return;
    }
    let words = gpu_memory_mark_words(unix_to_ticks()(unix_ns), trace_off, done);
    with_writer(Target::Global, |w| w.record(&words));
}

/// A GPU allocator's levels at one moment (see [`gpu_memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuMemoryLevel {
    /// When, in nanoseconds since the Unix epoch.
    pub unix_ns: u64,
    /// Bytes allocated to the program.
    pub allocated_bytes: i64,
    /// Bytes held from the driver.
    pub reserved_bytes: u64,
    /// Whether the allocator's trace was turned on or read here.
    pub edge: TraceEdge,
    /// The recorder's ticks ([`now_ticks`]) its event is known to lie
    /// strictly between, where known: the edges of the stages around it on
    /// the thread that caused it. Its wall-clock time is moved inside them.
    pub between_ticks: Option<(u64, u64)>,
}

/// Where a level stands in the allocator's trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEdge {
    /// After one of its events.
    Event,
    /// Where the trace was turned on (the level then).
    Start,
    /// Where it was read (the level then): it covered the time since its
    /// start, or since the last read where it went on through that one.
    End,
}

impl TraceEdge {
    fn flag(self) -> u64 {
        match self {
            TraceEdge::Event => 0,
            TraceEdge::Start => flag::TRACE_START,
            TraceEdge::End => flag::TRACE_END,
        }
    }
}

/// When a front door's queue operation begins (record it with
/// [`crate::queue::QueueMeta`]): the tick now while the global session
/// records, else 0.
#[inline]
pub fn queue_began() -> u64 {
    crate::queue::began()
}

/// Makes the CUDA stream `raw` (a `CUstream`; 0 for the legacy default
/// stream) the one this thread's stages record their GPU events on, for a
/// front door that learns of stream switches itself (torch's).
#[cfg(feature = "cuda")]
pub fn set_stream(raw: usize) {
    crate::cuda::set_raw_stream(raw as crate::cuda::RawStream);
}

#[cfg(test)]
mod tests {
    use super::placed;

    #[test]
    fn levels_move_inside_their_edges_and_keep_their_order() {
        let free_before_an_end = [(100, None), (125, None), (130, Some((90, 120))), (135, None)];
        // The free (tagged: between an edge at 90 and the end at 120) moves to 119, and the
        // untagged event ahead of it with it; the one after stays.
        assert_eq!(placed(free_before_an_end.into_iter()), [100, 119, 119, 135]);
        // An allocation tagged with a begin at 200 but timed before it moves after it, and so
        // does the later untagged event the wall clock put at the same time.
        assert_eq!(placed([(190, Some((200, u64::MAX))), (195, None)].into_iter()), [201, 201]);
        // Untagged levels keep their times; out of order ones never go back.
        assert_eq!(placed([(10, None), (8, None), (12, None)].into_iter()), [10, 10, 12]);
        // Bounds that disagree (impossible from one clock): the upper one wins, the order holds.
        assert_eq!(placed([(50, Some((60, 40))), (45, None)].into_iter()), [39, 61]);
    }
}
