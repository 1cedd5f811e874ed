//! Stage edges told to torch's allocator trace.
//!
//! The trace times its events in whole microseconds, by a clock of its own,
//! so a block freed in the microsecond a stage ends in can be placed after
//! the end and its bytes counted as still held. While the trace is on, each
//! stage or frame edge of a thread therefore names itself to torch as that
//! thread's metadata (`torch._C._cuda_setMemoryMetadata`: per thread, and
//! carried by each event the thread causes), and the read places every
//! tagged event between the edge it carries and the thread's next edge
//! ([`stageprof::foreign::GpuMemoryLevel::between_ticks`]). It costs one
//! call into torch an edge (a stage with GPU events took 0.2-0.5 µs more on
//! an H100 host), in traced frames only; at other times an edge pays one
//! relaxed load.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyString;
use stageprof::foreign;

/// Whether edges are told to torch now (the allocator's trace is on).
static TAGGING: AtomicBool = AtomicBool::new(false);
/// Torch's per-thread setter of the trace's metadata.
static SETTER: Mutex<Option<Py<PyAny>>> = Mutex::new(None);
/// Every thread's log, by the slot its tags name.
static LOGS: Mutex<Vec<Arc<Mutex<EdgeLog>>>> = Mutex::new(Vec::new());

/// Changes whenever the setter does (start, stop).
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD: RefCell<Option<ThreadTags>> = const { RefCell::new(None) };
}

/// What tags of stageprof's start with (a program's own tags are left alone).
const PREFIX: &str = "stageprof:";

/// One thread's edges while the trace is on: the recorder's ticks just
/// before and just after each edge's record.
#[derive(Default)]
struct EdgeLog {
    /// Edges are numbered from 0 over the thread's life; `edges` holds the latest, up to `next`.
    next: u64,
    edges: VecDeque<(u64, u64)>,
    /// The latest edge when the trace was last read: no event after that read carries an older one.
    latest_at_read: u64,
}

impl EdgeLog {
    fn push(&mut self, before: u64, after: u64) -> u64 {
        self.edges.push_back((before, after));
        self.next += 1;
        self.next - 1
    }

    fn first(&self) -> u64 {
        self.next - self.edges.len() as u64
    }

    /// The ticks an event tagged with edge `n` lies between: after that
    /// edge's record, before the next one's (if the thread has made it).
    fn between(&self, n: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(n.checked_sub(self.first())?).ok()?;
        let after = self.edges.get(i)?.1;
        Some((after, self.edges.get(i + 1).map_or(u64::MAX, |e| e.0)))
    }

    /// A read is done: events read later are newer than the previous read,
    /// so they carry the edge latest then, or a later one.
    fn read(&mut self) {
        while self.first() < self.latest_at_read {
            self.edges.pop_front();
        }
        self.latest_at_read = self.next.saturating_sub(1);
    }

    fn clear(&mut self) {
        self.edges.clear();
        self.latest_at_read = self.next;
    }
}

/// Runs `record` (a stage's or frame's begin or end), telling torch of the
/// edge while the allocator's trace is on.
#[inline]
pub(crate) fn at_edge<R>(py: Python<'_>, record: impl FnOnce() -> R) -> R {
    if !TAGGING.load(Relaxed) {
        return record();
    }
    let before = foreign::now_ticks();
    let recorded = record();
    let after = foreign::now_ticks();
    tag(py, before, after);
    recorded
}

fn tag(py: Python<'_>, before: u64, after: u64) {
    let told = THREAD.with(|thread| {
        let mut thread = thread.borrow_mut();
        let thread = thread.get_or_insert_with(ThreadTags::register);
        let n = thread.log.lock().unwrap_or_else(PoisonError::into_inner).push(before, after);
        let generation = GENERATION.load(Relaxed);
        if thread.setter.as_ref().is_none_or(|(g, _)| *g != generation) {
            let setter = SETTER.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|s| s.clone_ref(py));
            thread.setter = setter.map(|s| (generation, s));
        }
        let (_, setter) = thread.setter.as_ref()?;
        thread.tag.clear();
        let _ = write!(thread.tag, "{PREFIX}{}:{n}", thread.slot);
        // Called after the thread's state is let go: the setter is Python, and could begin a stage.
        Some((setter.clone_ref(py), PyString::new(py, &thread.tag)))
    });
    let Some((setter, tag)) = told else { return };
    if let Err(e) = setter.call1(py, (tag,)) {
        // Never into the program: the events go on being placed by their times alone.
        stop();
        eprintln!(
            "stageprof: GPU memory: torch's allocator trace took no stage edge ({e}); an event in the \
             microsecond a stage begins or ends may be counted on the wrong side of it"
        );
    }
}

/// A thread's part in tagging: its slot and edge log, the setter as of a
/// generation (read under a lock only when it changed), and the tag's text.
struct ThreadTags {
    slot: usize,
    log: Arc<Mutex<EdgeLog>>,
    setter: Option<(u64, Py<PyAny>)>,
    tag: String,
}

impl ThreadTags {
    fn register() -> ThreadTags {
        let mut logs = LOGS.lock().unwrap_or_else(PoisonError::into_inner);
        let log = Arc::new(Mutex::new(EdgeLog::default()));
        logs.push(Arc::clone(&log));
        ThreadTags { slot: logs.len() - 1, log, setter: None, tag: String::new() }
    }
}

/// Edges are told to torch through `setter` from now on (the trace is on).
pub(crate) fn start(setter: Py<PyAny>) {
    *SETTER.lock().unwrap_or_else(PoisonError::into_inner) = Some(setter);
    GENERATION.fetch_add(1, Relaxed);
    TAGGING.store(true, Relaxed);
}

/// Edges are no longer told (the trace is off); those kept are let go.
pub(crate) fn stop() {
    TAGGING.store(false, Relaxed);
    let setter = SETTER.lock().unwrap_or_else(PoisonError::into_inner).take();
    GENERATION.fetch_add(1, Relaxed);
    drop(setter);
    for log in Edges::now().0 {
        log.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// In a forked child: edges are told no more, without touching a lock
/// (another thread of the parent may have held one at the fork).
pub(crate) fn abandon_after_fork() {
    TAGGING.store(false, Relaxed);
}

/// Every thread's edges, as a read of the trace sees them.
pub(crate) struct Edges(Vec<Arc<Mutex<EdgeLog>>>);

impl Edges {
    pub(crate) fn now() -> Edges {
        Edges(LOGS.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// The ticks an event carrying `tag` (its `user_metadata`) lies between, where it is one of ours.
    pub(crate) fn between(&self, tag: &str) -> Option<(u64, u64)> {
        let (slot, n) = tag.strip_prefix(PREFIX)?.split_once(':')?;
        let log = self.0.get(slot.parse::<usize>().ok()?)?;
        log.lock().unwrap_or_else(PoisonError::into_inner).between(n.parse().ok()?)
    }

    /// The read is done: edges no later event can carry are let go.
    pub(crate) fn read_done(&self) {
        for log in &self.0 {
            log.lock().unwrap_or_else(PoisonError::into_inner).read();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(log: EdgeLog) -> Edges {
        Edges(vec![Arc::new(Mutex::new(EdgeLog::default())), Arc::new(Mutex::new(log))])
    }

    #[test]
    fn a_tag_names_the_ticks_between_its_edge_and_the_next() {
        let mut log = EdgeLog::default();
        assert_eq!(log.push(10, 12), 0);
        assert_eq!(log.push(20, 22), 1);
        let edges = edges(log);
        assert_eq!(edges.between("stageprof:1:0"), Some((12, 20)));
        assert_eq!(edges.between("stageprof:1:1"), Some((22, u64::MAX)), "the thread's latest edge");
        for not_ours in ["stageprof:1:2", "stageprof:0:0", "stageprof:7:0", "mine:1:0", "stageprof:1", ""] {
            assert_eq!(edges.between(not_ours), None, "{not_ours:?}");
        }
    }

    #[test]
    fn a_read_keeps_the_edges_later_events_can_carry() {
        let edges = edges(EdgeLog::default());
        let push = |before, after| edges.0[1].lock().unwrap().push(before, after);
        push(1, 2);
        push(3, 4);
        edges.read_done();
        push(5, 6);
        // Edge 1 was the latest at the read: an event after it may still carry it.
        edges.read_done();
        assert_eq!(edges.between("stageprof:1:0"), None);
        assert_eq!(edges.between("stageprof:1:1"), Some((4, 5)));
        edges.read_done();
        assert_eq!(edges.between("stageprof:1:1"), None);
        assert_eq!(edges.between("stageprof:1:2"), Some((6, u64::MAX)));
        edges.0[1].lock().unwrap().clear();
        assert_eq!(edges.between("stageprof:1:2"), None);
        assert_eq!(push(7, 8), 3, "numbers go on after a clear: old tags name nothing");
        assert_eq!(edges.between("stageprof:1:3"), Some((8, u64::MAX)));
    }
}
