//! Instrumented queues: how full each was over time, how long items stayed,
//! and who waited on whom; and the pipeline they join, with the stage that
//! limits its throughput.
//!
//! The pipeline's stages are the threads that send to and receive from the
//! queues. A thread is busy whenever it is not waiting in a queue operation
//! (between its first and its last); its busy share is of the pipeline's
//! whole time, so a source that made every item early, before the queues
//! filled, does not look busy. The limiting stage is the busiest one:
//! in a pipeline of stages joined by queues, the slowest stage works all the
//! time, the queue before it fills (its producers block) and the queue after
//! it runs dry (its consumers wait), while every other stage waits on it.
//! The evidence given is its busy share, its inputs' time full and its
//! outputs' time empty.
//!
//! What a speed-up buys comes from the bottleneck model of a linear
//! pipeline: each stage's service time is its busy time per item (items
//! received, or sent for a stage with no input), its capacity one item per
//! service time (times its workers: threads with the same input and output
//! queues are one stage), and the pipeline's throughput the smallest capacity. A
//! stage made X% faster serves in (100 - X)% of its time; the prediction is
//! the smallest capacity then. Queues only smooth the flow in this model
//! (it holds where they are large enough not to stall the stages beside the
//! slowest).
//!
//! End-to-end latency is the age of the items the last stage receives: how
//! long since they (or the items they were made from, see
//! `stageprof::queue`) entered the pipeline's first queue.
//!
//! Operations reach the aggregator in time order, as the reader settled
//! them (`stageprof_model::ingest::queue_order`) except where a receive
//! timed before its racing send came after it; each queue's depth samples
//! are put in exact order and folded as they come (`depth_series`).

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use crate::depth_series::{DepthAfter, DepthSeries};

use stageprof_model::{Catalog, NameId, QueueEvent, QueueOp, Warning};

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
    /// Depth over time, at most [`DEPTH_POINTS`] points: `(ns since the
    /// profile's start, the most items it held from then to the next point)`.
    pub depth_over_time: Vec<(u64, u64)>,
}

/// Points of a queue's depth over time kept for the report.
pub const DEPTH_POINTS: usize = 300;

#[derive(Default)]
struct QueueAcc {
    /// Queues made (or first used in the profile) under this name.
    opened: u64,
    capacity: Option<u64>,
    sent: u64,
    received: u64,
    blocked_ns: u64,
    waited_ns: u64,
    residence: DurationAcc,
    /// The depth after every operation.
    depths: DepthSeries,
}

/// One stage of the pipeline: the threads that send to and receive from
/// the same queues (one, or several workers sharing the job).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStage {
    /// The thread's name (its number where it has none); for several
    /// workers, what their names share and how many there are.
    pub thread: String,
    /// Threads doing this job.
    pub workers: u32,
    /// Queues it receives from.
    pub inputs: Vec<String>,
    /// Queues it sends to.
    pub outputs: Vec<String>,
    /// Its time not spent waiting in queue operations (between its first and
    /// its last), as a share of the pipeline's time (the first operation of
    /// any stage to the last of any), 0 to 100; for several workers, their mean.
    pub busy_pct: f64,
    /// From the start of its first queue operation to the end of its last.
    pub span_ns: u64,
    /// Items it handled: received, or sent where it receives from no queue.
    pub items: u64,
    /// Its busy time per item (for several workers, each worker's).
    pub service_ns: Option<u64>,
    /// How long the items it received had been in the pipeline (since they,
    /// or the items they were made from, entered its first queue); `None`
    /// where unknown (a source; a profile before format version 8).
    pub item_age: Option<DurationStats>,
}

/// The throughput predicted if one stage were faster.
#[derive(Clone, Debug, PartialEq)]
pub struct Speedup {
    /// Index into [`Pipeline::stages`].
    pub stage: usize,
    /// How much less time per item it would take, in percent.
    pub faster_pct: u32,
    /// The pipeline's predicted throughput, items a second.
    pub throughput_per_s: f64,
    /// The predicted mean end-to-end latency, ns (see [`Pipeline::predicted_latency_with`]).
    pub latency_ns: Option<f64>,
}

/// A bounded queue whose senders waited for room and whose receivers waited
/// for items, each for a large share of the pipeline's time: the stages
/// beside it take turns waiting, and a larger queue would let each absorb
/// the other's bursts (the bottleneck model assumes it does).
#[derive(Clone, Debug, PartialEq)]
pub struct UndersizedQueue {
    /// The queue's name.
    pub name: String,
    /// Items it holds at most.
    pub capacity: u64,
    /// Time its senders were blocked, as a share of the pipeline's time (0 to 100).
    pub sender_blocked_pct: f64,
    /// Time its receivers waited, as a share of the pipeline's time (0 to 100).
    pub receiver_waited_pct: f64,
}

/// The share of the pipeline's time both sides of a queue must have waited
/// for it to be called too small.
pub const UNDERSIZED_PCT: f64 = 10.0;

/// The speed-ups the report predicts for each stage, in percent.
pub const SPEEDUPS_PCT: [u32; 3] = [10, 25, 50];

/// The stages joined by queues, and the one that limits throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// Every thread that used a queue, by name.
    pub stages: Vec<PipelineStage>,
    /// Index into `stages` of the limiting stage (the busiest; see the module's rule).
    pub limiting_stage: Option<usize>,
    /// Items a second the limiting stage handled over its time.
    pub measured_per_s: Option<f64>,
    /// Items a second the model predicts as the stages are (the smallest capacity).
    pub predicted_per_s: Option<f64>,
    /// For each stage and each of [`SPEEDUPS_PCT`]: the throughput predicted.
    pub speedups: Vec<Speedup>,
    /// Bounded queues both of whose sides waited long (see [`UndersizedQueue`]).
    pub undersized_queues: Vec<UndersizedQueue>,
    /// End-to-end latency: the age of the items the last stage received
    /// (the one stage that sends to no queue; `None` if there are several, or none).
    pub latency: Option<DurationStats>,
}

/// A stage from the threads doing its job (`workers`), over a pipeline
/// that ran `window` ns.
fn job_stage(
    thread: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    workers: &[(u32, &ThreadAcc)],
    window: u64,
) -> PipelineStage {
    let first_ns = workers.iter().filter_map(|(_, t)| t.first_ns).min().unwrap_or(0);
    let span = workers.iter().map(|(_, t)| t.last_ns).max().unwrap_or(0).saturating_sub(first_ns);
    let busy_ns: u64 = workers
        .iter()
        .map(|(_, t)| t.last_ns.saturating_sub(t.first_ns.unwrap_or(t.last_ns)).saturating_sub(t.waiting_ns))
        .fold(0, u64::saturating_add);
    let n = workers.len() as u64;
    let busy = if window == 0 { 0.0 } else { 100.0 * busy_ns as f64 / (n as f64 * window as f64) };
    let items: u64 = workers.iter().map(|(_, t)| if t.inputs.is_empty() { t.sent } else { t.received }).sum();
    let mut age = DurationAcc::default();
    workers.iter().for_each(|(_, t)| age.merge(&t.age));
    PipelineStage {
        thread,
        workers: n as u32,
        inputs,
        outputs,
        busy_pct: busy.clamp(0.0, 100.0),
        span_ns: span,
        items,
        service_ns: (items > 0).then(|| busy_ns / items),
        item_age: (age.count() > 0).then(|| age.stats()),
    }
}

/// The bounded queues both of whose sides waited at least
/// [`UNDERSIZED_PCT`] of a pipeline that ran `window` ns.
fn undersized_queues(queues: &[QueueStats], window: u64) -> Vec<UndersizedQueue> {
    let share = |ns: u64| if window == 0 { 0.0 } else { (100.0 * ns as f64 / window as f64).min(100.0) };
    queues
        .iter()
        .filter_map(|q| {
            let (blocked, waited) = (share(q.sender_blocked_ns), share(q.receiver_waited_ns));
            let capacity = q.capacity.filter(|_| blocked >= UNDERSIZED_PCT && waited >= UNDERSIZED_PCT)?;
            Some(UndersizedQueue {
                name: q.name.clone(),
                capacity,
                sender_blocked_pct: blocked,
                receiver_waited_pct: waited,
            })
        })
        .collect()
}

/// A stage's name from its workers' thread names: the one name, or what
/// the names share (`model-0`, `model-1`: `model`) and how many there are.
fn stage_name(mut names: Vec<String>) -> String {
    if names.len() == 1 {
        return names.remove(0);
    }
    names.sort();
    let (first, last) = (&names[0], &names[names.len() - 1]);
    let shared = first.chars().zip(last.chars()).take_while(|(a, b)| a == b).count();
    let prefix: String = first.chars().take(shared).collect();
    let prefix = prefix.trim_end_matches(|c: char| !c.is_alphanumeric());
    let prefix = if prefix.is_empty() { first.as_str() } else { prefix };
    format!("{prefix} ({} workers)", names.len())
}

/// The smallest of the stages' capacities (items a second), with stage
/// `scaled.0`'s service time multiplied by `scaled.1`.
fn predicted_per_s(stages: &[PipelineStage], scaled: Option<(usize, f64)>) -> Option<f64> {
    let capacity = |(i, s): (usize, &PipelineStage)| {
        let factor = scaled.filter(|&(f, _)| f == i).map_or(1.0, |(_, factor)| factor);
        Some(f64::from(s.workers.max(1)) * 1e9 / (s.service_ns? as f64 * factor).max(1.0))
    };
    stages.iter().enumerate().filter_map(capacity).reduce(f64::min)
}

impl Pipeline {
    /// The throughput (items a second) the model predicts if stage `stage`
    /// took `factor` times its measured service time (0.5: twice as fast).
    pub fn predicted_with(&self, stage: usize, factor: f64) -> Option<f64> {
        predicted_per_s(&self.stages, Some((stage, factor)))
    }

    /// The mean end-to-end latency (ns) the model predicts if stage `stage`
    /// took `factor` times its service time. By Little's law the items in
    /// the pipeline are its throughput times its latency; while the queues
    /// before the limiting stage stay as full, their count stays, so a
    /// change of throughput (the limiting stage faster or slower, or another
    /// stage made the limit) scales the latency by its inverse. Otherwise a
    /// stage after the limiting one adds its change of service time to each
    /// item's latency, and one before it changes nothing (its items wait for
    /// the limit anyway). `None` without a measured latency.
    pub fn predicted_latency_with(&self, stage: usize, factor: f64) -> Option<f64> {
        let latency = self.latency?.mean_ns as f64;
        let (now, then, limit) = (self.predicted_per_s?, self.predicted_with(stage, factor)?, self.limiting_stage?);
        if stage == limit || (then / now - 1.0).abs() > 1e-9 {
            return Some(latency * now / then);
        }
        if !self.feeds(limit, stage) {
            return Some(latency);
        }
        let service = self.stages[stage].service_ns? as f64;
        Some((latency + (factor - 1.0) * service).max(0.0))
    }

    /// Whether items flow from stage `from` to stage `to` through queues.
    fn feeds(&self, from: usize, to: usize) -> bool {
        let mut reached = vec![false; self.stages.len()];
        let mut next = vec![from];
        while let Some(at) = next.pop() {
            for (i, st) in self.stages.iter().enumerate() {
                if !reached[i] && self.stages[at].outputs.iter().any(|q| st.inputs.contains(q)) {
                    reached[i] = true;
                    next.push(i);
                }
            }
        }
        reached[to]
    }
}

/// A stage's job: the queues its threads receive from and send to.
type Job<'a> = (&'a BTreeSet<NameId>, &'a BTreeSet<NameId>);

#[derive(Default)]
struct ThreadAcc {
    waiting_ns: u64,
    first_ns: Option<u64>,
    last_ns: u64,
    inputs: BTreeSet<NameId>,
    outputs: BTreeSet<NameId>,
    sent: u64,
    received: u64,
    /// Ages in the pipeline of the items it received.
    age: DurationAcc,
}

/// Every queue's operations, folded.
#[derive(Default)]
pub(crate) struct QueueTracker {
    queues: HashMap<NameId, QueueAcc>,
    threads: HashMap<u32, ThreadAcc>,
}

impl QueueTracker {
    pub(crate) fn event(&mut self, e: &QueueEvent) {
        let q = self.queues.entry(e.queue).or_default();
        let (depth, waited, age) = match e.op {
            QueueOp::Opened { capacity } => {
                q.opened += 1;
                q.capacity = capacity;
                q.depths.push(e.ts_ns, DepthAfter::Read(0));
                return;
            }
            QueueOp::Sent { blocked_ns, depth } => {
                q.sent += 1;
                q.blocked_ns = q.blocked_ns.saturating_add(blocked_ns);
                (depth, blocked_ns, None)
            }
            QueueOp::Received { waited_ns, depth, residence_ns, age_ns } => {
                q.received += 1;
                q.waited_ns = q.waited_ns.saturating_add(waited_ns);
                if let Some(r) = residence_ns {
                    q.residence.record(r);
                }
                (depth, waited_ns, age_ns)
            }
        };
        let sent = matches!(e.op, QueueOp::Sent { .. });
        let after = match depth {
            Some(d) => DepthAfter::Read(d.min(u64::from(u32::MAX)) as u32),
            None if sent => DepthAfter::OneMore,
            None => DepthAfter::OneFewer,
        };
        q.depths.push(e.ts_ns, after);
        let t = self.threads.entry(e.thread).or_default();
        if let Some(age) = age {
            t.age.record(age);
        }
        t.waiting_ns = t.waiting_ns.saturating_add(waited);
        // The thread's time starts where its first operation began.
        let began = e.ts_ns.saturating_sub(waited);
        t.first_ns = Some(t.first_ns.map_or(began, |f| f.min(began)));
        t.last_ns = t.last_ns.max(e.ts_ns);
        if sent {
            t.outputs.insert(e.queue);
            t.sent += 1;
        } else {
            t.inputs.insert(e.queue);
            t.received += 1;
        }
    }

    /// The pipeline the queues join, with its limiting stage; `None` without queues.
    pub(crate) fn pipeline(&self, catalog: &Catalog, queues: &[QueueStats]) -> Option<Pipeline> {
        if self.threads.is_empty() {
            return None;
        }
        let names_of = |set: &BTreeSet<NameId>| set.iter().map(|&n| catalog.name(n).to_owned()).collect::<Vec<_>>();
        // Busy shares are of the whole pipeline's time: a source that made every item
        // early, before the queues filled, was busy while it ran but is not the limit.
        let first = self.threads.values().filter_map(|t| t.first_ns).min().unwrap_or(0);
        let last = self.threads.values().map(|t| t.last_ns).max().unwrap_or(0);
        let window = last.saturating_sub(first);
        // Threads doing the same job (the same input and output queues) are one stage of several workers.
        let mut jobs: BTreeMap<Job<'_>, Vec<(u32, &ThreadAcc)>> = BTreeMap::new();
        for (&thread, t) in &self.threads {
            jobs.entry((&t.inputs, &t.outputs)).or_default().push((thread, t));
        }
        let thread_name = |thread: u32| {
            catalog
                .thread(thread)
                .map(|i| i.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("thread {thread}"))
        };
        let mut stages: Vec<PipelineStage> = jobs
            .into_iter()
            .map(|((inputs, outputs), workers)| {
                let names = workers.iter().map(|&(thread, _)| thread_name(thread)).collect();
                job_stage(stage_name(names), names_of(inputs), names_of(outputs), &workers, window)
            })
            .collect();
        stages.sort_by(|a, b| a.thread.cmp(&b.thread));
        // The busiest; of equally busy stages, the one whose inputs were fullest.
        let full = |s: &PipelineStage| {
            s.inputs
                .iter()
                .filter_map(|q| queues.iter().find(|x| &x.name == q).and_then(|x| x.full_pct))
                .fold(0.0, f64::max)
        };
        let limiting_stage = (0..stages.len()).max_by(|&a, &b| {
            let key = |s: &PipelineStage| (s.busy_pct, full(s));
            key(&stages[a]).partial_cmp(&key(&stages[b])).unwrap_or(std::cmp::Ordering::Equal)
        });
        let measured_per_s = limiting_stage
            .map(|i| &stages[i])
            .filter(|s| s.span_ns > 0)
            .map(|s| s.items as f64 * 1e9 / s.span_ns as f64);
        let undersized_queues = undersized_queues(queues, window);
        let mut sinks = stages.iter().filter(|s| s.outputs.is_empty() && !s.inputs.is_empty());
        let latency = match (sinks.next(), sinks.next()) {
            (Some(sink), None) => sink.item_age,
            _ => None,
        };
        let mut pipeline = Pipeline {
            latency,
            undersized_queues,
            predicted_per_s: predicted_per_s(&stages, None),
            measured_per_s,
            speedups: Vec::new(),
            stages,
            limiting_stage,
        };
        pipeline.speedups = (0..pipeline.stages.len())
            .flat_map(|stage| SPEEDUPS_PCT.map(|faster_pct| (stage, faster_pct)))
            .filter_map(|(stage, faster_pct)| {
                let factor = 1.0 - f64::from(faster_pct) / 100.0;
                let throughput_per_s = pipeline.predicted_with(stage, factor)?;
                let latency_ns = pipeline.predicted_latency_with(stage, factor);
                Some(Speedup { stage, faster_pct, throughput_per_s, latency_ns })
            })
            .collect();
        Some(pipeline)
    }

    /// What went wrong with the queues: items never received, names reused.
    pub(crate) fn warnings(&self, catalog: &Catalog) -> Vec<Warning> {
        let mut by_name: Vec<(&str, &QueueAcc)> = self.queues.iter().map(|(&n, q)| (catalog.name(n), q)).collect();
        by_name.sort_by_key(|&(name, _)| name);
        let mut warnings = Vec::new();
        for (name, q) in by_name {
            if q.opened > 1 {
                warnings.push(Warning::QueueNameReused { queue: name.to_owned(), count: q.opened });
            }
            if q.sent > q.received {
                warnings.push(Warning::QueueItemsLeft { queue: name.to_owned(), count: q.sent - q.received });
            }
        }
        warnings
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
        let depth = self.depths.summary(self.capacity, DEPTH_POINTS);
        let share = |ns: u64| if depth.span_ns == 0 { 0.0 } else { 100.0 * ns as f64 / depth.span_ns as f64 };
        QueueStats {
            name: name.to_owned(),
            capacity: self.capacity,
            sent: self.sent,
            received: self.received,
            depth_mean: depth.mean,
            depth_max: depth.max,
            full_pct: depth.full_ns.map(share),
            empty_pct: share(depth.empty_ns),
            residence: self.residence.stats(),
            sender_blocked_ns: self.blocked_ns,
            receiver_waited_ns: self.waited_ns,
            depth_over_time: depth.over_time,
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
    fn the_limiting_stage_is_the_busiest_and_its_queues_say_so() {
        let mut c = Catalog::default();
        c.set_name(0, "raw");
        c.set_name(1, "features");
        for (index, name) in [(0, "source"), (1, "model"), (2, "sink")] {
            c.add_thread(stageprof_model::ThreadInfo { index, os_tid: 100 + u64::from(index), name: name.into() });
        }
        let mut t = QueueTracker::default();
        let op = |queue, thread, ts_ns, op| QueueEvent { queue, thread, ts_ns, op };
        t.event(&op(0, 0, 0, QueueOp::Opened { capacity: Some(1) }));
        t.event(&op(1, 0, 0, QueueOp::Opened { capacity: Some(1) }));
        // Over 1000 ns: the source blocks 900 on a full `raw`; the model
        // waits 50 on `raw`, never on `features`; the sink waits 800 on `features`.
        t.event(&op(0, 0, 1000, QueueOp::Sent { blocked_ns: 900, depth: Some(1) }));
        t.event(&op(
            0,
            1,
            50,
            QueueOp::Received { waited_ns: 50, depth: Some(0), residence_ns: Some(50), age_ns: None },
        ));
        t.event(&op(1, 1, 1000, QueueOp::Sent { blocked_ns: 0, depth: Some(1) }));
        t.event(&op(
            1,
            2,
            1000,
            QueueOp::Received { waited_ns: 800, depth: Some(0), residence_ns: Some(5), age_ns: None },
        ));
        t.event(&op(
            1,
            2,
            200,
            QueueOp::Received { waited_ns: 0, depth: Some(0), residence_ns: Some(5), age_ns: None },
        ));
        let queues = t.stats(&c);
        let p = t.pipeline(&c, &queues).expect("a pipeline");
        let names: Vec<&str> = p.stages.iter().map(|s| s.thread.as_str()).collect();
        assert_eq!(names, ["model", "sink", "source"]);
        let model = &p.stages[0];
        assert_eq!(
            (model.inputs.as_slice(), model.outputs.as_slice()),
            (&["raw".to_string()][..], &["features".to_string()][..])
        );
        assert!((model.busy_pct - 95.0).abs() < 1e-9, "{}", model.busy_pct);
        assert_eq!(p.limiting_stage, Some(0));
        // The source's time starts with its first send: from then on it only waited.
        assert_eq!((p.stages[1].busy_pct, p.stages[2].busy_pct), (0.0, 0.0));
        // The model served its one item in 950 ns; the others took no time per item.
        assert_eq!((model.items, model.service_ns), (1, Some(950)));
        assert_eq!(p.predicted_per_s, Some(1e9 / 950.0));
        let half = p.speedups.iter().find(|s| s.stage == 0 && s.faster_pct == 50).unwrap();
        assert_eq!(half.throughput_per_s, 1e9 / 475.0);
    }

    #[test]
    fn depth_is_weighted_by_time_whatever_order_the_threads_came_in() {
        // Each depth as read, then none read (each counted on from the one before in time): the same figures.
        for read in [true, false] {
            let mut c = Catalog::default();
            c.set_name(0, "frames");
            let mut t = QueueTracker::default();
            let d = |depth| Some(depth).filter(|_| read);
            // Receiver's thread read first, then the sender's.
            t.event(&at(60, QueueOp::Received { waited_ns: 5, depth: d(1), residence_ns: Some(50), age_ns: None }));
            t.event(&at(100, QueueOp::Received { waited_ns: 0, depth: d(0), residence_ns: Some(70), age_ns: None }));
            t.event(&at(0, QueueOp::Opened { capacity: Some(2) }));
            t.event(&at(10, QueueOp::Sent { blocked_ns: 0, depth: d(1) }));
            t.event(&at(30, QueueOp::Sent { blocked_ns: 20, depth: d(2) }));
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

    #[test]
    fn depths_not_read_are_counted_on_and_pinned_by_the_next_read() {
        let mut c = Catalog::default();
        c.set_name(0, "frames");
        let mut t = QueueTracker::default();
        t.event(&at(0, QueueOp::Opened { capacity: Some(4) }));
        // An item's receive ticked at 20, before its send at 21 (both ticks are taken
        // before the channel moves the item): the count goes below zero for 1 ns,
        // shown as empty, and is right again after the send.
        t.event(&at(20, QueueOp::Received { waited_ns: 0, depth: None, residence_ns: None, age_ns: None }));
        t.event(&at(21, QueueOp::Sent { blocked_ns: 0, depth: None }));
        t.event(&at(30, QueueOp::Sent { blocked_ns: 0, depth: None }));
        // Two sends were not recorded (recording off): the next read says 3, not the count's 1.
        t.event(&at(50, QueueOp::Sent { blocked_ns: 0, depth: Some(3) }));
        t.event(&at(70, QueueOp::Sent { blocked_ns: 0, depth: None }));
        t.event(&at(100, QueueOp::Received { waited_ns: 0, depth: None, residence_ns: None, age_ns: None }));
        let s = &t.stats(&c)[0];
        // 0 over [0,30), 1 over [30,50), 3 over [50,70), 4 over [70,100): 20 + 60 + 120 = 200 item-ns in 100 ns.
        assert!((s.depth_mean - 2.0).abs() < 1e-9, "{}", s.depth_mean);
        assert_eq!((s.depth_max, s.full_pct, s.empty_pct), (4, Some(30.0), 30.0));
    }
}
