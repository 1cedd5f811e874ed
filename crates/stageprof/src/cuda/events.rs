//! CUDA events that time each stage on its stream, resolved off the
//! pipeline's threads.

use std::collections::VecDeque;
use std::sync::Mutex;

use crossbeam_queue::SegQueue;
use cudarc::driver::sys::{self, CUevent, CUresult, CUstream};

/// A stage's begin and end events, waiting for the GPU to pass the end.
pub(crate) struct PendingTime {
    pub instance: u64,
    pub start: CUevent,
    /// `None` where the end event could not be recorded: the stage is untimed.
    pub end: Option<CUevent>,
    /// For a stage that ended on another stream than it began on: its end
    /// on the stream it began on (it is timed to the later of the two).
    pub end_on_start_stream: Option<CUevent>,
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
#[derive(Default)]
pub(crate) struct EventTimer {
    free: SegQueue<usize>,
    ended: SegQueue<PendingTime>,
    /// Ended stages the GPU has not passed yet: the GPU thread's alone.
    waiting: Mutex<VecDeque<PendingTime>>,
}

// SAFETY: CUevent handles are opaque driver pointers, valid on any thread of the process.
unsafe impl Send for PendingTime {}

impl EventTimer {
    /// Records an event on `stream` (the caller made the context current);
    /// `None` if the driver refused (a stream of another context, say).
    pub(super) fn record(&self, stream: CUstream) -> Option<CUevent> {
        let event = match self.free.pop() {
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
        // SAFETY: `event` was created in the current context; a bad stream is an error return.
        match unsafe { sys::cuEventRecord(event, stream) } {
            CUresult::CUDA_SUCCESS => Some(event),
            _ => {
                self.recycle(event);
                None
            }
        }
    }

    pub(super) fn wait_for(&self, time: PendingTime) {
        self.ended.push(time);
    }

    fn recycle(&self, e: CUevent) {
        self.free.push(e as usize);
    }

    /// Times every stage whose end event the GPU has passed (`wait`: waits
    /// for the rest, at finish). Stages end in order on each thread, not
    /// across threads, so every waiting stage is looked at.
    pub(super) fn resolve(&self, wait: bool) -> Vec<Resolved> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(t) = self.ended.pop() {
            waiting.push_back(t);
        }
        let mut out = Vec::new();
        for _ in 0..waiting.len() {
            let t = waiting.pop_front().expect("counted");
            let ends = [t.end, t.end_on_start_stream];
            if ends.iter().flatten().any(|&end| !passed(end, wait)) {
                waiting.push_back(t);
                continue;
            }
            let ns = ends.iter().flatten().filter_map(|&end| elapsed_ns(t.start, end)).max();
            let stream_changed = t.end_on_start_stream.is_some();
            out.push(Resolved { instance: t.instance, ns, stream_changed });
            [t.start].into_iter().chain(ends.into_iter().flatten()).for_each(|e| self.recycle(e));
        }
        out
    }
}

/// Whether the GPU has passed `event` (`wait`: waits until it has).
fn passed(event: CUevent, wait: bool) -> bool {
    // SAFETY: the event was recorded by `record` and is not yet recycled.
    let state = unsafe {
        if wait {
            sys::cuEventSynchronize(event)
        } else {
            sys::cuEventQuery(event)
        }
    };
    state != CUresult::CUDA_ERROR_NOT_READY
}

fn elapsed_ns(start: CUevent, end: CUevent) -> Option<u64> {
    let mut ms = 0f32;
    // SAFETY: both events completed; `ms` is a valid out-pointer.
    let r = unsafe { sys::cuEventElapsedTime_v2(&mut ms, start, end) };
    (r == CUresult::CUDA_SUCCESS).then(|| (f64::from(ms) * 1e6).round().max(0.0) as u64)
}
