//! `stageprof.Queue`'s engine: a FIFO queue with `queue.Queue`'s methods,
//! kept in Rust so that a put or a get, recorded or not, is one call into
//! the extension.
//!
//! Each item travels with its stamp (the tick its put began at and the tick
//! it entered the pipeline, see `stageprof::queue`); each put and get that
//! happens while the global session records says how long it waited and
//! how many items the queue held after it, read under the queue's own lock.
//! A waiting put, get or join lets the GIL go and wakes every
//! [`SIGNAL_CHECK`] to run Python's signal handlers, so Ctrl-C stops it as
//! it stops `queue.Queue`'s.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use stageprof::foreign;
use stageprof::queue::QueueMeta;

use crate::session::name_thread_once;

pyo3::import_exception!(queue, Full);
pyo3::import_exception!(queue, Empty);

/// How long a wait runs before it looks at Python's signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The tick a put began at (0: not recorded), the item's id for the reader (see `stageprof::queue`).
type Stamp = u64;

#[derive(Default)]
struct Items {
    items: VecDeque<(Py<PyAny>, Stamp)>,
    /// Items put and not yet marked done (`task_done`).
    unfinished: u64,
}

/// A FIFO queue named in the report (`stageprof.Queue` in Python).
#[pyclass(frozen, subclass, name = "Queue", module = "stageprof._native")]
pub(crate) struct NativeQueue {
    /// The queue's name in the report.
    #[pyo3(get)]
    name: String,
    /// At most this many items (0 or less: no limit), as `queue.Queue`'s.
    #[pyo3(get)]
    maxsize: i64,
    /// What records its operations, as for Rust's queues.
    meta: QueueMeta,
    state: Mutex<Items>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

/// What a put or a get that has to wait does: fail at once, or wait until a
/// deadline (none: for ever).
#[derive(Clone, Copy)]
enum Patience {
    None,
    Until(Option<Instant>),
}

impl Patience {
    /// `queue.Queue`'s reading of `block` and `timeout`.
    fn new(block: bool, timeout: Option<f64>) -> PyResult<Patience> {
        match (block, timeout) {
            (false, _) => Ok(Patience::None),
            (true, None) => Ok(Patience::Until(None)),
            (true, Some(t)) if t.is_nan() || t < 0.0 => {
                Err(PyValueError::new_err("'timeout' must be a non-negative number"))
            }
            (true, Some(t)) => Ok(Patience::Until(Some(
                Instant::now() + Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(u32::MAX.into())),
            ))),
        }
    }
}

#[pymethods]
impl NativeQueue {
    #[new]
    #[pyo3(signature = (name, maxsize = 0))]
    fn new(name: String, maxsize: i64) -> NativeQueue {
        let capacity = u64::try_from(maxsize).ok().filter(|&c| c > 0);
        NativeQueue {
            meta: QueueMeta::new(&name, capacity),
            name,
            maxsize,
            state: Mutex::new(Items::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
        }
    }

    /// Puts `item` in, waiting for room as `block` and `timeout` say (`queue.Full` when none came).
    #[pyo3(signature = (item, block = true, timeout = None))]
    fn put(&self, py: Python<'_>, item: Py<PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        let patience = Patience::new(block, timeout)?;
        let began = foreign::queue_began();
        let (mut items, waited) = self.wait_for(py, &self.not_full, |s| !self.is_full(s), patience)?;
        let Some(mut items) = items.take() else { return Err(Full::new_err(())) };
        items.items.push_back((item, began));
        items.unfinished += 1;
        let depth = items.items.len() as u64;
        drop(items);
        self.not_empty.notify_one();
        if began != 0 {
            let now = if waited { foreign::now_ticks() } else { began };
            name_thread_once(py);
            self.meta.sent(began, now, Some(depth));
        }
        Ok(())
    }

    /// Takes the oldest item, waiting for one as `block` and `timeout` say (`queue.Empty` when none came).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let patience = Patience::new(block, timeout)?;
        let began = foreign::queue_began();
        let (mut items, waited) = self.wait_for(py, &self.not_empty, |s| !s.items.is_empty(), patience)?;
        let Some((item, sent)) = items.as_mut().and_then(|s| s.items.pop_front()) else {
            return Err(Empty::new_err(()));
        };
        let depth = items.map_or(0, |s| s.items.len()) as u64;
        self.not_full.notify_one();
        if began != 0 {
            let now = if waited { foreign::now_ticks() } else { began };
            name_thread_once(py);
            // An item put while nothing recorded carries 0: the reader pairs it by its place.
            self.meta.received(began, now, Some(depth), (sent != 0).then_some(sent));
        }
        Ok(item)
    }

    /// `put(item, block=False)`.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.put(py, item, false, None)
    }

    /// `get(block=False)`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py, false, None)
    }

    /// Marks an item taken out as dealt with, for `join`.
    fn task_done(&self) -> PyResult<()> {
        let mut items = self.lock();
        if items.unfinished == 0 {
            return Err(PyValueError::new_err("task_done() called too many times"));
        }
        items.unfinished -= 1;
        if items.unfinished == 0 {
            self.all_done.notify_all();
        }
        Ok(())
    }

    /// Waits until every item put in has been marked done.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        self.wait_for(py, &self.all_done, |s| s.unfinished == 0, Patience::Until(None)).map(drop)
    }

    /// Items in the queue now.
    fn qsize(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether the queue holds no item now.
    fn empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Whether the queue holds `maxsize` items now.
    fn full(&self) -> bool {
        self.is_full(&self.lock())
    }

    fn __repr__(&self) -> String {
        format!("<stageprof.Queue {:?}, {} items>", self.name, self.qsize())
    }
}

impl NativeQueue {
    fn lock(&self) -> MutexGuard<'_, Items> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_full(&self, items: &Items) -> bool {
        self.maxsize > 0 && items.items.len() as u64 >= self.maxsize as u64
    }

    /// The queue, locked, once `ready` holds (`None` if it did not within
    /// `patience`), and whether that took a wait. While waiting the GIL is
    /// let go; the queue's lock is only ever taken while holding the GIL
    /// or with it let go, never while waiting for it.
    fn wait_for(
        &self,
        py: Python<'_>,
        cond: &Condvar,
        ready: impl Fn(&Items) -> bool + Sync,
        patience: Patience,
    ) -> PyResult<(Option<MutexGuard<'_, Items>>, bool)> {
        let mut waited = false;
        loop {
            let items = self.lock();
            if ready(&items) {
                return Ok((Some(items), waited));
            }
            let until = match patience {
                Patience::None => return Ok((None, waited)),
                Patience::Until(until) => until,
            };
            let slice = match until.map(|u| u.saturating_duration_since(Instant::now())) {
                Some(left) if left.is_zero() => return Ok((None, waited)),
                Some(left) => left.min(SIGNAL_CHECK),
                None => SIGNAL_CHECK,
            };
            drop(items);
            waited = true;
            py.detach(|| {
                let items = self.lock();
                if !ready(&items) {
                    drop(cond.wait_timeout(items, slice).unwrap_or_else(PoisonError::into_inner));
                }
            });
            py.check_signals()?;
        }
    }
}
