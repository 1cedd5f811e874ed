//! Instrumented queues: how full each was over time, how long items stayed,
//! and who waited on whom.
//!
//! Operations reach the aggregator in the order their threads' records were
//! read, not in time order across threads, so each queue keeps its `(time,
//! depth)` samples (12 bytes an operation) and orders them once, for the
//! time-weighted figures.

use std::collections::HashMap;

use stageprof_model::{Catalog, NameId, QueueEvent, QueueOp};

use crate::stats::{DurationAcc, DurationStats};

/// One queue's figures over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Items it holds at most (`None`: unbounded).
    pub capacity: Option<u64>,
    /// Items sent into it.
    pub sent: u64,
    /// Items received from it.
    pub received: u64,
    /// Items in it, weighted by time, from its first operation to its last.
    pub depth_mean: f64,
    /// The most items it held.
    pub depth_max: u64,
    /// Share of that time it was full (0 to 100; bounded queues).
    pub full_pct: Option<f64>,
    /// Share of that time it was empty (0 to 100).
    pub empty_pct: f64,
    /// Time from the start of an item's send to its receive.
    pub residence: DurationStats,
    /// Time senders waited for room, in all.
    pub sender_blocked_ns: u64,
    /// Time receivers waited for an item, in all.
    pub receiver_waited_ns: u64,
}

#[derive(Default)]
struct QueueAcc {
    capacity: Option<u64>,
    sent: u64,
    received: u64,
    blocked_ns: u64,
    waited_ns: u64,
    residence: DurationAcc,
    /// `(time, depth after)` of every operation.
    depths: Vec<(u64, u32)>,
}

/// Every queue's operations, folded.
#[derive(Default)]
pub(crate) struct QueueTracker {
    queues: HashMap<NameId, QueueAcc>,
}

impl QueueTracker {
    pub(crate) fn event(&mut self, e: &QueueEvent) {
        let q = self.queues.entry(e.queue).or_default();
        let depth = match e.op {
            QueueOp::Opened { capacity } => {
                q.capacity = capacity;
                0
            }
            QueueOp::Sent { blocked_ns, depth } => {
                q.sent += 1;
                q.blocked_ns = q.blocked_ns.saturating_add(blocked_ns);
                depth
            }
            QueueOp::Received { waited_ns, depth, residence_ns } => {
                q.received += 1;
                q.waited_ns = q.waited_ns.saturating_add(waited_ns);
                if let Some(r) = residence_ns {
                    q.residence.record(r);
                }
                depth
            }
        };
        q.depths.push((e.ts_ns, depth.min(u64::from(u32::MAX)) as u32));
    }

    /// Each queue's figures, by name.
    pub(crate) fn stats(&self, catalog: &Catalog) -> Vec<QueueStats> {
        let mut out: Vec<QueueStats> = self.queues.iter().map(|(&name, q)| q.stats(catalog.name(name))).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl QueueAcc {
    fn stats(&self, name: &str) -> QueueStats {
        let mut depths = self.depths.clone();
        depths.sort_by_key(|&(t, _)| t);
        let (mut area, mut full, mut empty) = (0u128, 0u64, 0u64);
        for pair in depths.windows(2) {
            let ((t0, d), (t1, _)) = (pair[0], pair[1]);
            let held = t1 - t0;
            area += u128::from(held) * u128::from(d);
            full += if self.capacity.is_some_and(|c| u64::from(d) >= c) { held } else { 0 };
            empty += if d == 0 { held } else { 0 };
        }
        let span = match (depths.first(), depths.last()) {
            (Some(&(first, _)), Some(&(last, _))) => last - first,
            _ => 0,
        };
        let share = |ns: u64| if span == 0 { 0.0 } else { 100.0 * ns as f64 / span as f64 };
        QueueStats {
            name: name.to_owned(),
            capacity: self.capacity,
            sent: self.sent,
            received: self.received,
            depth_mean: if span == 0 { 0.0 } else { area as f64 / span as f64 },
            depth_max: depths.iter().map(|&(_, d)| u64::from(d)).max().unwrap_or(0),
            full_pct: self.capacity.map(|_| share(full)),
            empty_pct: share(empty),
            residence: self.residence.stats(),
            sender_blocked_ns: self.blocked_ns,
            receiver_waited_ns: self.waited_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts_ns: u64, op: QueueOp) -> QueueEvent {
        QueueEvent { queue: 0, thread: 0, ts_ns, op }
    }

    #[test]
    fn depth_is_weighted_by_time_whatever_order_the_threads_came_in() {
        let mut c = Catalog::default();
        c.set_name(0, "frames");
        let mut t = QueueTracker::default();
        // Receiver's thread read first, then the sender's.
        t.event(&at(60, QueueOp::Received { waited_ns: 5, depth: 1, residence_ns: Some(50) }));
        t.event(&at(100, QueueOp::Received { waited_ns: 0, depth: 0, residence_ns: Some(70) }));
        t.event(&at(0, QueueOp::Opened { capacity: Some(2) }));
        t.event(&at(10, QueueOp::Sent { blocked_ns: 0, depth: 1 }));
        t.event(&at(30, QueueOp::Sent { blocked_ns: 20, depth: 2 }));
        let s = &t.stats(&c)[0];
        assert_eq!((s.name.as_str(), s.capacity, s.sent, s.received), ("frames", Some(2), 2, 2));
        // Depth 0 over [0,10), 1 over [10,30), 2 over [30,60), 1 over [60,100): 120 item-ns over 100 ns.
        assert!((s.depth_mean - 1.2).abs() < 1e-9, "{}", s.depth_mean);
        assert_eq!(s.depth_max, 2);
        assert_eq!((s.full_pct, s.empty_pct), (Some(30.0), 10.0));
        assert_eq!((s.residence.count, s.residence.p50_ns, s.residence.max_ns), (2, 50, 70));
        assert_eq!((s.sender_blocked_ns, s.receiver_waited_ns), (20, 5));
    }
}
