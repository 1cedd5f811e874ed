//! Channels that say how a pipeline's stages wait on each other.
//!
//! A pipeline whose stages run on threads joined by queues is limited by the
//! stage whose input fills while its output runs dry; the time per stage
//! does not show which. These channels are crossbeam-channel's, with the
//! same blocking, `try_` and timeout operations, clonable ends and
//! disconnection; each send and receive also records, into the global
//! session, how long it waited, how many items the queue held after it, and
//! for a received item how long it was in the queue. The report turns that
//! into depth over time, time full and empty, residence and who waited.
//!
//! A queue says it exists (its name and capacity) in each session that
//! sees it used, so a queue made before `init`, or used across sessions,
//! still has its capacity in every profile.
//!
//! Nothing of stageprof's rides with the items: in a contended channel each
//! byte of the slot costs (a u64 through crossbeam with two producers took
//! 143 ns an item, with 16 bytes beside it 258 ns, on an H100 host; 8 bytes
//! of stamp cost 70-140 ns, recording or not). The reader pairs each receive
//! with the send that brought its item, the queue being first in, first out
//! (`stageprof_model::ingest::queue_order`), for the item's residence and its
//! path through the pipeline (an item a thread sends is taken to be made from
//! the last item that thread received; see `stageprof_model::ingest::item_origins`).
//!
//! While no session records, an operation costs a relaxed load beyond the
//! channel's own. Durations are written in clock ticks and converted when
//! the profile is read, so the hot path does no division.
//!
//! Each end reads the queue's depth at most once every [`DEPTH_READ_NS`]:
//! the depth is the two cursors' distance, and in a contended channel the
//! other side's cursor is a cache line another core just wrote (a miss on
//! nearly every operation). An operation that does not read it says so,
//! and the reader counts on from the last read (a send one more, a receive
//! one fewer), so the depth is still known after every operation; the reads
//! pin the count against operations that were not recorded (records
//! dropped, recording switched off).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};
use stageprof_model::wire::{queue_words, QueueRecord, MAX_QUEUE_WORDS};

use crate::clock::{ns_to_ticks, ticks};
use crate::recorder::{with_writer, Target, ThreadWriter, GLOBAL_RECORDING};

/// An end reads its queue's depth on its first operation at least this many
/// nanoseconds after its last read: rarely enough that the read costs little
/// however fast items go, often enough for a counter track in a trace.
const DEPTH_READ_NS: u64 = 10_000;

/// A queue holding at most `capacity` items, named `name` in the report
/// (0 makes a rendezvous channel, as crossbeam's does).
pub fn bounded<T>(name: &str, capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    ends(name, Some(capacity as u64), tx, rx)
}

/// A queue with no limit, named `name` in the report.
pub fn unbounded<T>(name: &str) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    ends(name, None, tx, rx)
}

fn ends<T>(
    name: &str,
    capacity: Option<u64>,
    tx: crossbeam_channel::Sender<T>,
    rx: crossbeam_channel::Receiver<T>,
) -> (Sender<T>, Receiver<T>) {
    // The clock is chosen once per process: before any operation is timed with it.
    crate::clock::clock();
    let meta = Arc::new(QueueMeta::new(name, capacity));
    meta.announce(ticks());
    (
        Sender { inner: tx, meta: meta.clone(), depth: DepthReads::new() },
        Receiver { inner: rx, meta, depth: DepthReads::new() },
    )
}

/// When one end last read its queue's depth, in ticks.
struct DepthReads {
    last: AtomicU64,
    every: u64,
}

impl DepthReads {
    fn new() -> DepthReads {
        DepthReads { last: AtomicU64::new(0), every: ns_to_ticks(DEPTH_READ_NS) }
    }

    /// `len()` if this end's last read was at least [`DEPTH_READ_NS`] before tick `now`.
    #[inline]
    fn read(&self, now: u64, len: impl FnOnce() -> usize) -> Option<u64> {
        // A clone of the end used on another thread may have read it after `now`: not due then.
        if now.saturating_sub(self.last.load(Relaxed)) < self.every {
            return None;
        }
        self.last.store(now, Relaxed);
        Some(len() as u64)
    }
}

/// What both ends of a queue share, and what records its operations: its
/// name, capacity, and the session that was last told it exists. A front
/// door's queue of its own (Python's `stageprof.Queue`) records through it too.
pub struct QueueMeta {
    name: u32,
    capacity: Option<u64>,
    opened_in: AtomicU32,
}

impl QueueMeta {
    /// The queue named `name`, holding at most `capacity` items (`None`: no limit).
    pub fn new(name: &str, capacity: Option<u64>) -> QueueMeta {
        QueueMeta { name: crate::names::intern(name), capacity, opened_in: AtomicU32::new(0) }
    }

    /// Says, at tick `at`, that the queue exists, if a session records.
    fn announce(&self, at: u64) {
        if GLOBAL_RECORDING.load(Relaxed) {
            with_writer(Target::Global, |w| {
                self.open(w, at);
                Some(())
            });
        }
    }

    /// Records a send that began at tick `began` and went through at `now`,
    /// leaving `depth` items (`None`: not read; one more than before).
    /// Times are ticks of the recorder's clock ([`crate::foreign::now_ticks`]).
    #[inline(always)]
    pub fn sent(&self, began: u64, now: u64, depth: Option<u64>) {
        let op = QueueRecord::Sent { blocked: now.saturating_sub(began), depth };
        // Sends and receives each reach the writer through a closure of their
        // own: one closure for both made one thread-local access function, with
        // every operation calling it, too big to inline. Now a program using
        // `send` and `recv` has one caller of each, which the compiler inlines.
        if GLOBAL_RECORDING.load(Relaxed) {
            with_writer(Target::Global, |w| self.write(w, now, op));
        }
    }

    /// Records a receive that began at tick `began` and took, at `now`, an
    /// item whose send began at tick `sent` (`None`: not known; the reader
    /// pairs the receive with its send), leaving `depth` items (`None`: not
    /// read; one fewer than before).
    #[inline(always)]
    pub fn received(&self, began: u64, now: u64, depth: Option<u64>, sent: Option<u64>) {
        let op = QueueRecord::Received { waited: now.saturating_sub(began), depth, sent };
        if GLOBAL_RECORDING.load(Relaxed) {
            with_writer(Target::Global, |w| self.write(w, now, op));
        }
    }

    /// Writes `op` at tick `at`, first saying the queue exists if the
    /// writer's session has not been told.
    #[inline(always)]
    fn write(&self, w: &mut ThreadWriter, at: u64, op: QueueRecord) -> Option<()> {
        // Written only when the session changed: both ends share this word, and a
        // store on every operation would bounce its cache line between their threads.
        if self.opened_in.load(Relaxed) != w.session() {
            self.open(w, at);
        }
        self.lay_out(w, at, op)
    }

    /// Tells the writer's session that this queue exists.
    #[cold]
    fn open(&self, w: &mut ThreadWriter, at: u64) {
        self.lay_out(w, at, QueueRecord::Opened { capacity: self.capacity });
        self.opened_in.store(w.session(), Relaxed);
    }

    /// Lays `op`'s record out and writes it, as it is.
    #[inline(always)]
    fn lay_out(&self, w: &mut ThreadWriter, at: u64, op: QueueRecord) -> Option<()> {
        let mut words = [0; MAX_QUEUE_WORDS];
        let len = queue_words(self.name, at, op, &mut words);
        w.record(&words[..len])
    }
}

/// The tick now while the session records, else 0 (no clock read): when
/// a queue operation begins.
#[inline]
pub(crate) fn began() -> u64 {
    if GLOBAL_RECORDING.load(Relaxed) {
        ticks()
    } else {
        0
    }
}

/// The sending end; clone it for more producers.
pub struct Sender<T> {
    inner: crossbeam_channel::Sender<T>,
    meta: Arc<QueueMeta>,
    depth: DepthReads,
}

/// The receiving end; clone it for more consumers.
pub struct Receiver<T> {
    inner: crossbeam_channel::Receiver<T>,
    meta: Arc<QueueMeta>,
    depth: DepthReads,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender { inner: self.inner.clone(), meta: self.meta.clone(), depth: DepthReads::new() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver { inner: self.inner.clone(), meta: self.meta.clone(), depth: DepthReads::new() }
    }
}

impl<T> Sender<T> {
    /// Sends `item`, waiting for room while the queue is full; fails when every receiver is gone.
    #[inline]
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        if !GLOBAL_RECORDING.load(Relaxed) {
            // Not recording: crossbeam's own send, with no try before it (on a
            // full queue that try is one more read of lines the other side writes).
            return self.inner.send(item);
        }
        self.send_recorded(item)
    }

    /// `send` while a session records, out of line: the path with no session
    /// stays a load and a branch, with no registers saved for this one.
    #[inline(never)]
    fn send_recorded(&self, item: T) -> Result<(), SendError<T>> {
        let began = ticks();
        // An item that fits at once waited for nothing: its send is recorded at
        // the tick it began, which saves a clock read on the common path.
        let now = match self.inner.try_send(item) {
            Ok(()) => began,
            Err(TrySendError::Disconnected(item)) => return Err(SendError(item)),
            Err(TrySendError::Full(item)) => {
                self.inner.send(item)?;
                ticks()
            }
        };
        self.sent_at(began, now, Ok(()))
    }

    /// Sends `item` if there is room now.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let began = began();
        let done = self.inner.try_send(item);
        // A try never waits: recorded at the tick it began, as `send`'s fast path.
        self.sent_at(began, began, done)
    }

    /// Sends `item`, waiting for room at most `timeout`.
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let began = began();
        let done = self.inner.send_timeout(item, timeout);
        self.sent(began, done)
    }

    /// Records a send that went through (a refused one moved nothing).
    #[inline]
    fn sent<E>(&self, began: u64, done: Result<(), E>) -> Result<(), E> {
        let now = if done.is_ok() && began != 0 { ticks() } else { 0 };
        self.sent_at(began, now, done)
    }

    /// Records a send that began at tick `began` and went through at `now`.
    #[inline]
    fn sent_at<E>(&self, began: u64, now: u64, done: Result<(), E>) -> Result<(), E> {
        if done.is_ok() && began != 0 {
            self.meta.sent(began, now, self.depth.read(now, || self.inner.len()));
        }
        done
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T> Receiver<T> {
    /// Takes an item, waiting for one while the queue is empty; fails when
    /// the queue is empty and every sender is gone.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        if !GLOBAL_RECORDING.load(Relaxed) {
            return self.inner.recv(); // as for `send`
        }
        self.recv_recorded()
    }

    /// `recv` while a session records, out of line as `send`'s.
    #[inline(never)]
    fn recv_recorded(&self) -> Result<T, RecvError> {
        let began = ticks();
        // As for `send`: an item there at once was waited for not at all.
        let (item, now) = match self.inner.try_recv() {
            Ok(item) => (item, began),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => (self.inner.recv()?, ticks()),
        };
        self.received_at(began, now, Ok(item))
    }

    /// Takes an item if there is one now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let began = began();
        let got = self.inner.try_recv();
        self.received_at(began, began, got)
    }

    /// Takes an item, waiting for one at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let began = began();
        let got = self.inner.recv_timeout(timeout);
        self.received(began, got)
    }

    /// Takes an item, waiting for one until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        let began = began();
        let got = self.inner.recv_deadline(deadline);
        self.received(began, got)
    }

    /// Items until every sender is gone and the queue is empty.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// Records an item received (a failed receive moved nothing).
    #[inline]
    fn received<E>(&self, began: u64, got: Result<T, E>) -> Result<T, E> {
        let now = if got.is_ok() && began != 0 { ticks() } else { 0 };
        self.received_at(began, now, got)
    }

    /// Records an item a receive that began at tick `began` got at `now`.
    #[inline]
    fn received_at<E>(&self, began: u64, now: u64, got: Result<T, E>) -> Result<T, E> {
        let item = got?;
        if began != 0 {
            self.meta.received(began, now, self.depth.read(now, || self.inner.len()), None);
        }
        Ok(item)
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}
