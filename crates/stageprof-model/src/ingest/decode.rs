//! Decoding recorder records (live, or read from a native file) into the
//! nester, in nanoseconds.

use foldhash::{HashMap, HashMapExt};

use crate::wire::{self, QueueRecord, Record, TickScale, WireError};
use crate::{
    Catalog, CounterSample, MemDelta, MemoryPool, ProfileSink, QueueEvent, QueueOp, SpanKind, StageMetrics, Warning,
};

use super::item_origins::ItemOrigins;
use super::nest::Nester;
use super::queue_order::{Moved, QueueOperation, QueueOrder};

/// A queue operation on its way to the sink: its event (a receive's
/// residence and age are filled in once its item's send, and the item's
/// entry into the pipeline, are known), its tick, and what it moved.
struct PendingOp {
    event: QueueEvent,
    ticks: u64,
    moved: Moved,
}

impl QueueOperation for PendingOp {
    fn ns(&self) -> u64 {
        self.event.ts_ns
    }

    fn queue(&self) -> u32 {
        self.event.queue
    }

    fn thread(&self) -> u32 {
        self.event.thread
    }

    fn began_ns(&self) -> u64 {
        let waited = match self.event.op {
            QueueOp::Sent { blocked_ns: waited, .. } | QueueOp::Received { waited_ns: waited, .. } => waited,
            QueueOp::Opened { .. } => 0,
        };
        self.event.ts_ns.saturating_sub(waited)
    }

    fn moved(&self) -> Moved {
        self.moved
    }

    fn depth(&self) -> Option<u64> {
        match self.event.op {
            QueueOp::Sent { depth, .. } | QueueOp::Received { depth, .. } => depth,
            QueueOp::Opened { .. } => None,
        }
    }
}

/// Feeds record words of each thread, in the order they were written, to a [`Nester`].
pub struct RecordDecoder {
    /// Ticks to nanoseconds.
    pub scale: TickScale,
    /// Nests the decoded begins and ends into spans.
    pub nester: Nester,
    /// Per thread: process-wide and GPU memory figures waiting for the END they precede.
    process: HashMap<u32, MemDelta>,
    gpu_mem: HashMap<u32, MemDelta>,
    /// GPU records seen while the nester had no GPU join to take them.
    unjoined_gpu: u64,
    /// Queue operations put in time order, receives paired with sends.
    queue_order: QueueOrder<PendingOp>,
    /// Where the items queues deliver entered the pipeline.
    origins: ItemOrigins<PendingOp>,
}

impl RecordDecoder {
    /// A decoder for records on the clock `scale` describes.
    pub fn new(scale: TickScale) -> Self {
        RecordDecoder {
            scale,
            nester: Nester::default(),
            process: HashMap::new(),
            gpu_mem: HashMap::new(),
            unjoined_gpu: 0,
            queue_order: QueueOrder::default(),
            origins: ItemOrigins::default(),
        }
    }

    /// Ends the input: the queue operations still waiting are settled,
    /// receives whose item's send never came are delivered without an age,
    /// and the nester closes what is open at `end_ns`.
    pub fn finish(&mut self, catalog: &Catalog, end_ns: Option<u64>, sink: &mut dyn ProfileSink) {
        let scale = self.scale;
        let origins = &mut self.origins;
        self.queue_order.finish(&mut |op, sent| settle_queue(op, sent, origins, scale, catalog, sink));
        self.origins.finish(&mut |pending, origin| deliver_received(pending, origin, scale, catalog, sink));
        self.nester.finish(catalog, end_ns, sink);
    }

    /// The collector finished a pass over every thread's records that began
    /// at tick `began`: queue operations old enough that no record of
    /// another thread can come before them are settled.
    pub fn passed(&mut self, began: u64, catalog: &Catalog, sink: &mut dyn ProfileSink) {
        let (scale, origins) = (self.scale, &mut self.origins);
        let began_ns = scale.ns(began);
        self.queue_order.passed(began_ns, &mut |op, sent| settle_queue(op, sent, origins, scale, catalog, sink));
    }

    /// What the joins missed, as warnings: GPU records no join took, spans
    /// a live join let go before their results were in, queue operations
    /// that came after newer ones were paired.
    pub fn join_warnings(&self) -> impl Iterator<Item = Warning> {
        let count = self.unjoined_gpu + self.nester.gpu_left_out();
        let not_joined = (count > 0).then_some(Warning::GpuNotJoined { count });
        let early = self.nester.released_early();
        let late = self.queue_order.late();
        not_joined
            .into_iter()
            .chain((early > 0).then_some(Warning::GpuResultsLate { calls: early }))
            .chain((late > 0).then_some(Warning::QueueOperationsLate { count: late }))
    }

    /// Decodes `words` written by `thread`. On malformed input, everything
    /// before the bad record has been delivered.
    pub fn feed(
        &mut self,
        catalog: &mut Catalog,
        thread: u32,
        words: &[u64],
        sink: &mut dyn ProfileSink,
    ) -> Result<(), WireError> {
        let scale = self.scale;
        let nester = &mut self.nester;
        let process = &mut self.process;
        let gpu_mem = &mut self.gpu_mem;
        let unjoined_gpu = &mut self.unjoined_gpu;
        let queue_order = &mut self.queue_order;
        let origins = &mut self.origins;
        wire::decode(words, |record| match record {
            Record::Begin { name, ticks, frame, sampled } => {
                let kind = if frame { SpanKind::Frame } else { SpanKind::Stage };
                nester.begin(catalog, thread, kind, name, scale.ns(ticks), sampled);
            }
            Record::End { name, ticks, unwound, cpu_ns, mem } => {
                let metrics = StageMetrics {
                    cpu_ns,
                    mem,
                    process_mem: process.remove(&thread),
                    gpu_mem: gpu_mem.remove(&thread),
                    ..StageMetrics::default()
                };
                nester.end(catalog, thread, name, scale.ns(ticks), metrics, unwound, sink);
            }
            Record::ProcessMem { pool, peak_bytes, net_bytes, end_bytes } => {
                let figures = if pool == MemoryPool::Gpu { &mut *gpu_mem } else { &mut *process };
                figures.insert(thread, MemDelta { peak_bytes, net_bytes, end_bytes });
            }
            Record::GpuLink { instance, timed } => nester.link_gpu(thread, instance, timed),
            Record::Task(task) => nester.task(catalog, thread, &task, scale, sink),
            // Joined to calls by the nester's GPU join (see gpu_join).
            Record::GpuTime { .. }
            | Record::GpuActivity { .. }
            | Record::GpuMemory { .. }
            | Record::GpuMemoryMark { .. }
            | Record::KernelTrace { .. } => {
                *unjoined_gpu += u64::from(!nester.take_gpu(&record, thread, scale));
            }
            Record::Queue { name, ticks, op } => {
                let at = QueueAt { queue: name, thread, ticks, scale };
                let Some(op) = decode_queue(at, op, catalog, sink) else { return };
                queue_order.push(op, &mut |op, sent| settle_queue(op, sent, origins, scale, catalog, sink));
            }
            Record::Counter { name, ticks, value } => {
                sink.counter(&CounterSample { name, thread, ts_ns: scale.ns(ticks), value }, catalog);
            }
        })
    }
}

/// Where and when a queue record was written.
#[derive(Clone, Copy)]
struct QueueAt {
    queue: u32,
    thread: u32,
    ticks: u64,
    scale: TickScale,
}

impl QueueAt {
    fn event(self, op: QueueOp) -> QueueEvent {
        QueueEvent { queue: self.queue, thread: self.thread, ts_ns: self.scale.ns(self.ticks), op }
    }
}

/// A queue record, in nanoseconds: to `sink` at once where it moved no
/// item; else to be put in time order (see `queue_order`).
fn decode_queue(at: QueueAt, record: QueueRecord, catalog: &Catalog, sink: &mut dyn ProfileSink) -> Option<PendingOp> {
    let ns = |t| at.scale.duration_ns(t);
    let (moved, op) = match record {
        QueueRecord::Opened { capacity } => {
            sink.queue(&at.event(QueueOp::Opened { capacity }), catalog);
            return None;
        }
        // Versions 7 to 9: worked out as recorded, and in no item's path.
        QueueRecord::ReceivedAged { waited, depth, residence, age } => {
            let op = QueueOp::Received {
                waited_ns: ns(waited),
                depth: Some(depth),
                residence_ns: residence.map(ns),
                age_ns: age.map(ns),
            };
            sink.queue(&at.event(op), catalog);
            return None;
        }
        QueueRecord::Sent { blocked, depth } => {
            let began = at.ticks.saturating_sub(blocked);
            (Moved::Sent { began }, QueueOp::Sent { blocked_ns: ns(blocked), depth })
        }
        QueueRecord::Received { waited, depth, sent } => {
            let op = QueueOp::Received { waited_ns: ns(waited), depth, residence_ns: None, age_ns: None };
            (Moved::Received { sent }, op)
        }
    };
    Some(PendingOp { event: at.event(op), ticks: at.ticks, moved })
}

/// A queue operation in its turn: a send to `sink` and into the items'
/// paths; a receive, which took its item from the send begun at tick
/// `sent`, with its residence, once its item's entry into the pipeline is known.
fn settle_queue(
    mut op: PendingOp,
    sent: Option<u64>,
    origins: &mut ItemOrigins<PendingOp>,
    scale: TickScale,
    catalog: &Catalog,
    sink: &mut dyn ProfileSink,
) {
    if let Moved::Sent { .. } = op.moved {
        sink.queue(&op.event, catalog);
    }
    let (queue, thread) = (op.event.queue, op.event.thread);
    let mut deliver = |pending, origin| deliver_received(pending, origin, scale, catalog, sink);
    match op.moved {
        Moved::Sent { began } => origins.sent(queue, thread, began, &mut deliver),
        Moved::Received { .. } => {
            if let QueueOp::Received { residence_ns, .. } = &mut op.event.op {
                *residence_ns = sent.map(|s| scale.duration_ns(op.ticks.saturating_sub(s)));
            }
            origins.received(queue, thread, op.ticks, sent, op, &mut deliver);
        }
    }
}

/// Hands `sink` a received item's event, aged from `origin` (the tick its item entered the pipeline).
fn deliver_received(
    PendingOp { mut event, ticks, .. }: PendingOp,
    origin: Option<u64>,
    scale: TickScale,
    catalog: &Catalog,
    sink: &mut dyn ProfileSink,
) {
    if let QueueOp::Received { age_ns, .. } = &mut event.op {
        *age_ns = origin.map(|o| scale.duration_ns(ticks.saturating_sub(o)));
    }
    sink.queue(&event, catalog);
}
