//! CUDA events that time each stage on its stream, resolved off the
//! pipeline's threads.
//!
//! A stage's end and the next stage's begin are often one moment: a frame
//! begins and its first stage with it, a stage ends and the next begins.
//! Then one event serves both. An event is shared when this thread's
//! previous begin or end put one on the same stream less than
//! [`SHARE_WITHIN_NS`] before: nothing can have been launched in between
//! (a launch takes the host longer than that), so a second event would
//! mark the same point of the stream, at the cost of another record (1.3
//! to 2.5 us of the host, and a command the GPU runs between kernels).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;
use cudarc::driver::sys::{self, CUevent, CUresult, CUstream};

use crate::clock::ticks;

/// How soon after this thread's last event a begin or end on the same stream shares it.
pub(crate) const SHARE_WITHIN_NS: u64 = 500;

/// A recorded event; back in the pool once no stage it times needs it.
pub(crate) struct Event {
    raw: CUevent,
    /// The stream it was recorded on.
    stream: CUstream,
    pool: Arc<SegQueue<usize>>,
}

impl Drop for Event {
    fn drop(&mut self) {
        self.pool.push(self.raw as usize);
    }
}

// SAFETY: CUevent and CUstream handles are opaque driver pointers, valid on
// any thread of the process; the stream is only compared, never dereferenced.
unsafe impl Send for Event {}
// SAFETY: as above; the handle is only passed to the driver, which is thread-safe.
unsafe impl Sync for Event {}

/// The event this thread recorded or shared last, on which stream, and when (ticks).
struct LastEvent {
    event: Arc<Event>,
    stream: CUstream,
    at: u64,
}

thread_local! {
    static LAST_EVENT: RefCell<Option<LastEvent>> = const { RefCell::new(None) };
}

/// A stage's begin and end events, waiting for the GPU to pass the end.
pub(crate) struct PendingTime {
    pub instance: u64,
    pub start: Arc<Event>,
    /// `None` where the end event could not be recorded: the stage is untimed.
    pub end: Option<Arc<Event>>,
    /// For a stage that ended on another stream than it began on: its end
    /// on the stream it began on (it is timed to the later of the two).
    pub end_on_start_stream: Option<Arc<Event>>,
}

/// A stage's GPU time, resolved.
pub(crate) struct Resolved {
    pub instance: u64,
    /// `None` where the events could not be timed.
    pub ns: Option<u64>,
    pub stream_changed: bool,
}

/// Events to reuse, and stages waiting to be timed. What stages touch (a
/// free event, an ended stage handed over) are lock-free queues, so that the
/// GPU thread's resolving never holds a lock a stage waits on.
pub(crate) struct EventTimer {
    free: Arc<SegQueue<usize>>,
    ended: SegQueue<PendingTime>,
    /// Ended stages the GPU has not passed yet: the GPU thread's alone.
    waiting: Mutex<VecDeque<PendingTime>>,
    /// [`SHARE_WITHIN_NS`] in clock ticks.
    share_within: u64,
}

impl EventTimer {
    /// A timer sharing events within `share_within` clock ticks.
    pub(super) fn new(share_within: u64) -> EventTimer {
        EventTimer { free: Arc::default(), ended: SegQueue::new(), waiting: Mutex::default(), share_within }
    }

    /// An event on `stream` at this point of it (the caller made the
    /// context current): this thread's last one where it may be shared, else
    /// a new one; `None` if the driver refused (a stream of another context, say).
    pub(super) fn record(&self, stream: CUstream) -> Option<Arc<Event>> {
        let now = ticks();
        let recorded = LAST_EVENT.try_with(|last| {
            let mut last = last.borrow_mut();
            let shareable = |l: &&mut LastEvent| {
                l.stream == stream
                    && Arc::ptr_eq(&l.event.pool, &self.free)
                    && now.saturating_sub(l.at) < self.share_within
            };
            if let Some(l) = last.as_mut().filter(shareable) {
                l.at = now;
                return Some(l.event.clone());
            }
            let event = Arc::new(self.record_new(stream)?);
            *last = Some(LastEvent { event: event.clone(), stream, at: ticks() });
            Some(event)
        });
        // While the thread's locals are torn down, nothing is shared.
        recorded.unwrap_or_else(|_| self.record_new(stream).map(Arc::new))
    }

    fn record_new(&self, stream: CUstream) -> Option<Event> {
        let raw = match self.free.pop() {
            Some(e) => e as CUevent,
            None => {
                let mut e: CUevent = std::ptr::null_mut();
                // SAFETY: `e` is a valid out-pointer; default flags make a timing event.
                let r = unsafe { sys::cuEventCreate(&mut e, 0) };
                if r != CUresult::CUDA_SUCCESS {
                    return None;
                }
                e
            }
        };
        let event = Event { raw, stream, pool: self.free.clone() };
        // SAFETY: `raw` was created in the current context; a bad stream is an error return.
        (unsafe { sys::cuEventRecord(raw, stream) } == CUresult::CUDA_SUCCESS).then_some(event)
    }

    pub(super) fn wait_for(&self, time: PendingTime) {
        self.ended.push(time);
    }

    /// Times every stage whose end event the GPU has passed (`wait`: waits
    /// for the rest, at finish). A stream passes its events in the order
    /// they were recorded, so once one end is not passed, none handed over
    /// after it on that stream is asked about in this round: each driver
    /// query can hold up a launch of the pipeline's, and a GPU a frame
    /// behind would otherwise be asked about every stage of that frame every
    /// round. (Ends handed over out of their order, from two threads on one
    /// stream, wait a round at most.)
    pub(super) fn resolve(&self, wait: bool) -> Vec<Resolved> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(t) = self.ended.pop() {
            waiting.push_back(t);
        }
        let mut out = Vec::new();
        let mut behind: Vec<CUstream> = Vec::new();
        for _ in 0..waiting.len() {
            let t = waiting.pop_front().expect("counted");
            let ends = [&t.end, &t.end_on_start_stream];
            let mut pass = |end: &Arc<Event>| {
                if behind.contains(&end.stream) {
                    return false;
                }
                let p = passed(end, wait);
                if !p {
                    behind.push(end.stream);
                }
                p
            };
            if !ends.iter().copied().flatten().all(&mut pass) {
                waiting.push_back(t);
                continue;
            }
            let ns = ends.iter().copied().flatten().filter_map(|end| elapsed_ns(&t.start, end)).max();
            let stream_changed = t.end_on_start_stream.is_some();
            // Dropping `t` gives back the events no other stage shares.
            out.push(Resolved { instance: t.instance, ns, stream_changed });
        }
        out
    }
}

/// Whether the GPU has passed `event` (`wait`: waits until it has).
fn passed(event: &Event, wait: bool) -> bool {
    // SAFETY: the event was recorded by `record`; the `Event` keeps it out of the pool.
    let state = unsafe {
        if wait {
            sys::cuEventSynchronize(event.raw)
        } else {
            sys::cuEventQuery(event.raw)
        }
    };
    state != CUresult::CUDA_ERROR_NOT_READY
}

fn elapsed_ns(start: &Event, end: &Event) -> Option<u64> {
    let mut ms = 0f32;
    // SAFETY: both events completed and are held; `ms` is a valid out-pointer.
    let r = unsafe { sys::cuEventElapsedTime_v2(&mut ms, start.raw, end.raw) };
    (r == CUresult::CUDA_SUCCESS).then(|| (f64::from(ms) * 1e6).round().max(0.0) as u64)
}
