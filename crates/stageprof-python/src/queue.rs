//! What `stageprof.Queue` records: one object per queue holding its name
//! id, capacity and the session last told it exists, so a put or a get
//! costs one call into the extension beside the clock read at its start.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use pyo3::prelude::*;
use stageprof::foreign;
use stageprof_model::QueueOp;

use crate::session::name_thread_once;

/// An item's stamp: the tick its put began at and the tick it entered the
/// pipeline (see `stageprof::queue`); `None` when nothing recorded the put.
type Stamp = Option<(u64, u64)>;

/// The recording side of one `stageprof.Queue`.
#[pyclass(frozen, module = "stageprof._native")]
pub(crate) struct QueueRecorder {
    name_id: u32,
    capacity: Option<u64>,
    /// The session last told that the queue exists (0: none).
    opened_in: AtomicU32,
}

#[pymethods]
impl QueueRecorder {
    /// The recorder of queue `name` holding at most `maxsize` items (0 or less: no limit).
    #[new]
    fn new(name: &str, maxsize: i64) -> QueueRecorder {
        let capacity = u64::try_from(maxsize).ok().filter(|&c| c > 0);
        QueueRecorder { name_id: foreign::name_id(name), capacity, opened_in: AtomicU32::new(0) }
    }

    /// The recorder's clock now while the global session records, else 0.
    fn began(&self) -> u64 {
        if stageprof::is_recording() {
            foreign::now_ticks()
        } else {
            0
        }
    }

    /// The stamp an item put now carries.
    fn stamp(&self) -> Stamp {
        let began = self.began();
        (began != 0).then(|| (began, foreign::item_origin(began)))
    }

    /// Records the put of an item stamped `stamp`, `depth` items in the queue after it.
    fn put(&self, py: Python<'_>, stamp: Stamp, depth: u64) {
        if let Some((began, _)) = stamp {
            self.record(py, |now| QueueOp::Sent { blocked_ns: now.saturating_sub(began), depth });
        }
    }

    /// Records the get, begun at tick `began` (0: not recorded), of an item
    /// stamped `stamp`, `depth` items left.
    fn got(&self, py: Python<'_>, began: u64, stamp: Stamp, depth: u64) {
        if began == 0 {
            return;
        }
        let (put, origin) = stamp.unwrap_or((0, 0));
        self.record(py, |now| QueueOp::Received {
            waited_ns: now.saturating_sub(began),
            depth,
            residence_ns: (put != 0).then(|| now.saturating_sub(put)),
            age_ns: foreign::queue_received(origin),
        });
    }
}

impl QueueRecorder {
    /// Records `op` at the tick now, first saying that the queue exists if this session was not told.
    fn record(&self, py: Python<'_>, op: impl FnOnce(u64) -> QueueOp) {
        name_thread_once(py);
        let told = self.opened_in.load(Relaxed);
        let session = foreign::queue_exists(self.name_id, self.capacity, told);
        if session != told {
            self.opened_in.store(session, Relaxed);
        }
        foreign::queue(self.name_id, op(foreign::now_ticks()));
    }
}
