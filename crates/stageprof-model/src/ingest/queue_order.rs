//! Queue operations put in time order, and each receive paired with the
//! send that brought its item.
//!
//! Rust's queues (`stageprof::queue`) carry nothing of stageprof's with
//! their items: eight bytes more in each slot of a channel cost two
//! producers tens of nanoseconds an item, recording or not. A queue is first
//! in, first out, so the reader pairs them: in time order, each receive
//! takes the oldest item no receive has taken. Records reach the reader a
//! thread at a time, so operations wait here and are settled oldest first.
//! The collector says after each pass over the threads when that pass began
//! ([`QueueOrder::passed`]): every operation timed before the pass before it
//! has been read, so those are settled, however long a held-up collector
//! made the pass. A profile without passes (written before they were) has
//! its operations settled once [`HOLD_NS`] of newer ones have come. Either
//! way at most [`KEEP`] more wait. An operation that comes after a newer
//! one was settled (its thread preempted between its tick and its record
//! for longer than a pass) is counted, and the report says so
//! ([`QueueOrder::late`]).
//!
//! An operation's tick is read just before the channel moves the item (or
//! just after, where it had to wait), so a receive can be timed before the
//! send of its item, by nanoseconds, or by as long as a thread was
//! preempted in between: a receive that finds no item takes the next send
//! of its queue still waiting. A send that had to wait for room is timed
//! after its item went in, so where its thread was preempted before that
//! tick, the receive that took the item can be settled passes before the
//! send is read: a receive that finds no item and no later send waits for
//! its queue's next send to come, for up to [`HOLD_NS`] of newer operations,
//! before it is taken to have received an item no send told of ([`KEEP`]
//! wait so at most). Only the receive waits: the model of the queue lacks
//! both it and its send meanwhile, and so agrees with what the depth reads
//! say, where holding back its thread's later operations would not (so an
//! item its thread sends meanwhile is taken to be made from the item it
//! received before).
//!
//! Where operations were not recorded (before the session, while recording
//! was off, records dropped), counting alone would pair every later receive
//! with the wrong send, so the count is held to the depth the operations
//! read. Operations of two threads closer than [`RACE_NS`] are taken to
//! have raced where a read is checked, and so are those under way at its
//! tick (a send waiting for room, woken by the receive that made it, puts
//! its item in before its own tick, however long the wake-up took). A read
//! further off than that may still be a misreading: an operation moved its
//! item, and read the depth, somewhere between its call's start (its tick
//! less its wait) and its thread's next call, and a thread preempted between
//! its tick and its move makes the reads taken meanwhile look off, its own
//! and other threads'.
//! So the count moves only where a second read is off the same way as the
//! first (by the smaller difference) and its call began after every
//! operation that overlapped the first had ended: one preemption explains
//! one of the two at most. The first read is taken at its word (items in
//! the queue before anything was recorded). Items no send told of join
//! last (an end reads the depth on its first operation after a gap, so they
//! came after every item recorded before it); items received unseen leave
//! oldest first. A receive that names its send (Python's queue stamps its
//! items) takes that send's item.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt, HashSet};

/// Most operations waiting, past which the oldest are settled.
pub const KEEP: usize = 1 << 16;
/// Without passes, operations this much older than the newest are settled.
pub const HOLD_NS: u64 = 250_000_000;
/// Operations of two threads this close may have moved items in either
/// order than their ticks say (each tick is read just before or after).
pub const RACE_NS: u64 = 2_000;
/// An operation's item is taken to have moved within this long of its
/// call's start, however long until its thread's next call (or none came).
pub const SPAN_MAX_NS: u64 = HOLD_NS;

/// What a queue operation moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// An item went in; its send began at tick `began` (the item's id).
    Sent {
        /// The tick the send began.
        began: u64,
    },
    /// An item came out; `sent`: the id of its send, where the item carried it.
    Received {
        /// The id the item carried.
        sent: Option<u64>,
    },
}

/// A queue operation as its place in time and its pairing need it.
pub trait QueueOperation {
    /// When, in nanoseconds.
    fn ns(&self) -> u64;
    /// When its call began, in nanoseconds: [`QueueOperation::ns`] less the time it waited.
    fn began_ns(&self) -> u64;
    /// The thread that made it.
    fn thread(&self) -> u32;
    /// The queue's name.
    fn queue(&self) -> u32;
    /// What the operation moved.
    fn moved(&self) -> Moved;
    /// The queue's depth it read (items after it), if it read one.
    fn depth(&self) -> Option<u64>;
}

/// The items a queue holds by the count, oldest first.
#[derive(Default)]
struct Held {
    items: Items,
    /// Ids taken by receives that named them before their send was settled.
    taken_ahead: HashSet<u64>,
    /// Whether a depth read has been checked (the first is taken at its word).
    read: bool,
    /// A read off the count, waiting for a second to say the same.
    doubt: Option<Doubt>,
}

/// How far a read was off the count, beyond what racing explains, and when
/// the last operation that could have misled it ended.
#[derive(Clone, Copy)]
struct Doubt {
    off: i64,
    until_ns: u64,
}

/// Items in order: their sends' ids, and runs of items no send told of
/// (counted, not stored one by one: a depth read from a hostile file can
/// say any number).
#[derive(Default)]
struct Items {
    runs: VecDeque<Run>,
    len: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Sent(u64),
    Unknown(u64),
}

impl Items {
    fn push(&mut self, run: Run) {
        match (self.runs.back_mut(), run) {
            (_, Run::Unknown(0)) => return,
            (Some(Run::Unknown(n)), Run::Unknown(more)) => *n += more,
            _ => self.runs.push_back(run),
        }
        self.len += match run {
            Run::Sent(_) => 1,
            Run::Unknown(n) => n,
        };
    }

    /// The oldest item: `Some(None)` for one no send told of.
    fn pop(&mut self) -> Option<Option<u64>> {
        let taken = match self.runs.front_mut()? {
            Run::Sent(id) => {
                let id = *id;
                self.runs.pop_front();
                Some(id)
            }
            Run::Unknown(n) => {
                *n -= 1;
                if *n == 0 {
                    self.runs.pop_front();
                }
                None
            }
        };
        self.len -= 1;
        Some(taken)
    }

    /// Lets the oldest `count` items go.
    fn drop_oldest(&mut self, mut count: u64) {
        while count > 0 {
            match self.runs.front_mut() {
                Some(Run::Unknown(n)) if *n > count => {
                    *n -= count;
                    self.len -= count;
                    return;
                }
                Some(Run::Unknown(n)) => {
                    count -= *n;
                    self.len -= *n;
                    self.runs.pop_front();
                }
                Some(Run::Sent(_)) => {
                    count -= 1;
                    self.len -= 1;
                    self.runs.pop_front();
                }
                None => return,
            }
        }
    }

    /// Takes the item sent at `id` out, wherever it is; whether it was there.
    fn remove(&mut self, id: u64) -> bool {
        let Some(at) = self.runs.iter().position(|&run| run == Run::Sent(id)) else { return false };
        self.runs.remove(at);
        self.len -= 1;
        true
    }
}

/// Settles queue operations in time order; see the module doc.
pub struct QueueOrder<P> {
    /// In arrival order; `None` where settled ahead of its turn.
    waiting: Vec<Option<P>>,
    /// Receives that found no item in their turn, waiting for a send, oldest first.
    held_back: Vec<P>,
    oldest_ns: u64,
    newest_ns: u64,
    held: HashMap<u32, Held>,
    /// [`KEEP`], lower in tests.
    keep: usize,
    /// The time of the newest operation settled.
    settled_ns: u64,
    /// The last two passes' beginnings, latest first (none: settled by [`HOLD_NS`]).
    passes: Option<(u64, Option<u64>)>,
    /// Operations that came after a newer one was settled (see [`QueueOrder::late`]).
    late: u64,
}

impl<P: QueueOperation> Default for QueueOrder<P> {
    fn default() -> Self {
        QueueOrder::with_keep(KEEP)
    }
}

/// Hands over a settled operation and, for a receive, the id of the send it took its item from.
pub type Settle<'a, P> = dyn FnMut(P, Option<u64>) + 'a;

impl<P: QueueOperation> QueueOrder<P> {
    /// Settling the oldest once `keep` more wait.
    pub fn with_keep(keep: usize) -> Self {
        QueueOrder {
            waiting: Vec::new(),
            held_back: Vec::new(),
            oldest_ns: u64::MAX,
            newest_ns: 0,
            held: HashMap::new(),
            keep,
            settled_ns: 0,
            passes: None,
            late: 0,
        }
    }

    /// Takes `op`; settles, through `settle`, the operations whose turn came.
    pub fn push(&mut self, op: P, settle: &mut Settle<'_, P>) {
        if op.ns() < self.settled_ns {
            self.late += 1;
        }
        self.oldest_ns = self.oldest_ns.min(op.ns());
        self.newest_ns = self.newest_ns.max(op.ns());
        self.waiting.push(Some(op));
        let held_long = self.passes.is_none() && self.newest_ns - self.oldest_ns > 2 * HOLD_NS;
        if self.waiting.len() >= 2 * self.keep || held_long {
            self.settle(false, settle);
        }
    }

    /// The collector finished a pass over every thread's records that began
    /// at `began_ns`: the operations timed before the pass before it are
    /// all in (one timed just before this pass began may be written in the
    /// next), and are settled.
    pub fn passed(&mut self, began_ns: u64, settle: &mut Settle<'_, P>) {
        let before = self.passes.map(|(latest, _)| latest);
        self.passes = Some((began_ns, before));
        if before.is_some_and(|b| b > self.oldest_ns) {
            self.settle(false, settle);
        }
    }

    /// Operations that came after a newer one had been settled: their
    /// thread's records reached the reader more than a pass (or, without
    /// passes, [`HOLD_NS`]) or [`KEEP`] operations after another's, so
    /// receives around them may have been paired with the wrong sends.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Settles every operation left (the input is over).
    pub fn finish(&mut self, settle: &mut Settle<'_, P>) {
        self.settle(true, settle);
    }

    /// Settles, oldest first, every operation (`all`) or those known to be
    /// in (see the module doc) and all but the newest `keep`.
    fn settle(&mut self, all: bool, settle: &mut Settle<'_, P>) {
        // The operations stay where they are; their times are sorted, ties
        // in arrival order. A stable sort: each thread's operations arrive
        // in time order, so the times are a few sorted runs, which it merges.
        self.waiting.extend(self.held_back.drain(..).map(Some));
        let mut times: Vec<OpTime> = self
            .waiting
            .iter()
            .enumerate()
            .filter_map(|(at, op)| {
                let op = op.as_ref()?;
                let send = matches!(op.moved(), Moved::Sent { .. });
                Some(OpTime { ns: op.ns(), began: op.began_ns(), thread: op.thread(), at, queue: op.queue(), send })
            })
            .collect();
        times.sort_by_key(|t| t.ns);
        let cut = if all {
            times.len()
        } else {
            let settled_before = match self.passes {
                Some((_, before)) => before.unwrap_or(0),
                None => self.newest_ns.saturating_sub(HOLD_NS),
            };
            let old = times.partition_point(|t| t.ns < settled_before);
            old.max(times.len().saturating_sub(self.keep))
        };
        let mut ops = Waiting { ops: std::mem::take(&mut self.waiting), times: &times };
        let (mut sends, mut spans) = (None, None);
        for i in 0..cut {
            let Some(op) = ops.take(i) else { continue };
            let held = self.held.entry(op.queue()).or_default();
            // A receive that finds no item, if it may still wait (most operations stop at the first test).
            let finds_none = op.moved() == (Moved::Received { sent: None }) && held.items.len == 0;
            if finds_none && !all && self.held_back.len() < self.keep && self.newest_ns - op.ns() < HOLD_NS {
                // Built for the batch the first time a receive needs it.
                let sends = sends.get_or_insert_with(|| Sends::of(&times));
                if sends.first_after(&ops, op.queue(), i).is_none() {
                    self.held_back.push(op); // its send's record is still to come
                    continue;
                }
            }
            if let Some(read) = op.depth() {
                // The count before the operation, as the depth it read after it says.
                let before = match op.moved() {
                    Moved::Sent { .. } => read.saturating_sub(1),
                    Moved::Received { .. } => read.saturating_add(1),
                };
                held.hold_to(before, times[i].began, &mut Around { times: &times, i, spans: &mut spans });
            }
            let Moved::Received { sent } = op.moved() else {
                held.settle_send(op, settle);
                continue;
            };
            let taken = match sent {
                Some(id) => {
                    held.take_named(id);
                    Some(Some(id))
                }
                None => held.items.pop(),
            };
            let taken = taken.or_else(|| {
                let send = sends.get_or_insert_with(|| Sends::of(&times)).next_after(&mut ops, op.queue(), i)?;
                held.settle_send(send, settle);
                held.items.pop()
            });
            settle(op, taken.flatten());
        }
        if let Some(last) = cut.checked_sub(1) {
            self.settled_ns = self.settled_ns.max(times[last].ns);
        }
        self.waiting = ops.ops;
        self.waiting.retain(Option::is_some);
        let held_back_ns = self.held_back.first().map_or(u64::MAX, P::ns);
        self.oldest_ns = times.get(cut).map_or(u64::MAX, |t| t.ns).min(held_back_ns);
    }
}

impl Held {
    /// A send in its turn: its item joins the queue's, unless a receive
    /// named it already; then it goes to `settle`.
    fn settle_send<P: QueueOperation>(&mut self, op: P, settle: &mut Settle<'_, P>) {
        if let Moved::Sent { began } = op.moved() {
            // Checked for emptiness first: most runs name no item ahead, and hashing costs.
            if self.taken_ahead.is_empty() || !self.taken_ahead.remove(&began) {
                self.items.push(Run::Sent(began));
            }
        }
        settle(op, None);
    }

    /// Takes the item sent at `id`, wherever it is (or, not settled yet, when it comes).
    fn take_named(&mut self, id: u64) {
        if !self.items.remove(id) {
            self.taken_ahead.insert(id);
        }
    }

    /// Moves the count towards `read` items, the count before an
    /// operation whose call began at `began`, where they differ by more than
    /// the operations that raced it could explain, and a read before differed
    /// the same way and could not have been misled by the same operations.
    fn hold_to(&mut self, read: u64, began: u64, around: &mut Around<'_>) {
        let count = self.items.len;
        // Most reads agree with the count, and most that do not are explained
        // by operations close by: the rest of what went on is looked at last.
        let mut off = 0;
        if read != count {
            let close = around.close();
            off = off_by(read, count, close);
            if off != 0 {
                off = off_by(read, count, close + around.under_way());
            }
        }
        let by = match (std::mem::replace(&mut self.read, true), self.doubt) {
            _ if off == 0 => 0,
            (false, _) => off.abs(),
            (true, Some(doubt)) if doubt.off.signum() == off.signum() => {
                if began < doubt.until_ns {
                    return; // maybe misled by what misled the first: no second opinion
                }
                off.abs().min(doubt.off.abs())
            }
            (true, _) => 0,
        };
        if off > 0 {
            self.items.push(Run::Unknown(by as u64));
        } else if off < 0 {
            self.items.drop_oldest(by as u64);
        }
        let left = off - off.signum() * by;
        self.doubt = (left != 0).then(|| Doubt { off: left, until_ns: around.misled_until() });
    }
}

/// When an operation waiting to be settled happened (and its call began),
/// where it arrived, its thread and queue, and whether it was a send.
struct OpTime {
    ns: u64,
    began: u64,
    at: usize,
    thread: u32,
    queue: u32,
    send: bool,
}

/// The operations being settled, in arrival order, and their times in time order.
struct Waiting<'t, P> {
    ops: Vec<Option<P>>,
    times: &'t [OpTime],
}

impl<P> Waiting<'_, P> {
    /// The `i`-th operation in time, unless settled already.
    fn take(&mut self, i: usize) -> Option<P> {
        self.ops[self.times[i].at].take()
    }
}

/// Where each queue's sends are among the operations being settled, in time order.
struct Sends(HashMap<u32, VecDeque<usize>>);

impl Sends {
    fn of(times: &[OpTime]) -> Sends {
        let mut at: HashMap<u32, VecDeque<usize>> = HashMap::new();
        for (i, t) in times.iter().enumerate().filter(|(_, t)| t.send) {
            at.entry(t.queue).or_default().push_back(i);
        }
        Sends(at)
    }

    /// Where, in time order, the first send of `queue` after the `i`-th operation not yet settled is.
    fn first_after<P>(&mut self, ops: &Waiting<'_, P>, queue: u32, i: usize) -> Option<usize> {
        let at = self.0.get_mut(&queue)?;
        // Sends before `i`, or taken, are settled already: the front only moves on.
        while let Some(&j) = at.front() {
            if j > i && ops.ops[ops.times[j].at].is_some() {
                return Some(j);
            }
            at.pop_front();
        }
        None
    }

    /// The first send of `queue` after the `i`-th operation not yet settled, taken out of `ops`.
    fn next_after<P>(&mut self, ops: &mut Waiting<'_, P>, queue: u32, i: usize) -> Option<P> {
        let j = self.first_after(ops, queue, i)?;
        ops.take(j)
    }
}

/// How far `read` is off `count`, beyond what `raced` operations explain (signed, saturating).
fn off_by(read: u64, count: u64, raced: u64) -> i64 {
    let excess = |a: u64, b: u64| (a - b).min(i64::MAX as u64) as i64;
    if read > count.saturating_add(raced) {
        excess(read, count + raced)
    } else if count > read.saturating_add(raced) {
        -excess(count, read + raced)
    } else {
        0
    }
}

/// What went on around op `i`'s read, worked out as far as a read off the
/// count needs: the spans are built for the batch the first time one does.
struct Around<'a> {
    times: &'a [OpTime],
    i: usize,
    spans: &'a mut Option<Spans>,
}

impl Around<'_> {
    /// Operations on its queue within [`RACE_NS`] of it, itself included.
    fn window(&self) -> impl Iterator<Item = &OpTime> + '_ {
        let (ns, queue) = (self.times[self.i].ns, self.times[self.i].queue);
        let from = self.times.partition_point(|t| t.ns < ns.saturating_sub(RACE_NS));
        let to = self.times.partition_point(|t| t.ns <= ns.saturating_add(RACE_NS));
        self.times[from..to].iter().filter(move |t| t.queue == queue)
    }

    /// Operations other than it within [`RACE_NS`] of it: they may have
    /// moved their items on either side of its read.
    fn close(&self) -> u64 {
        self.window().count() as u64 - 1
    }

    /// Operations further off that were under way at its tick (begun
    /// before, through after), which may have moved their items on either
    /// side of its read too: a send waiting for room, woken by the receive
    /// that made it, puts its item in before its own tick, however long the
    /// wake-up took.
    fn under_way(&mut self) -> u64 {
        let (ns, queue) = (self.times[self.i].ns, self.times[self.i].queue);
        let under_way_close = self.window().filter(|t| t.began <= ns && ns < t.ns).count();
        let QueueSpans { starts, ticks, .. } = &self.spans().by_queue[&queue];
        // Each call starts at or before its tick: those begun by `ns` less those through by then.
        let under_way =
            starts.partition_point(|&start| start <= ns).saturating_sub(ticks.partition_point(|&tick| tick <= ns));
        under_way.saturating_sub(under_way_close) as u64
    }

    /// When the last operation that may have misled its read ended.
    fn misled_until(&mut self) -> u64 {
        let (times, i) = (self.times, self.i);
        self.spans().misled_until(times, i)
    }

    fn spans(&mut self) -> &Spans {
        self.spans.get_or_insert_with(|| Spans::of(self.times))
    }
}

/// When each operation being settled may have moved its item and read the
/// depth: from its call's start to its thread's next call's start, or
/// [`SPAN_MAX_NS`] (see the module doc).
struct Spans {
    /// Per operation in time order, where its span ends.
    ends: Vec<u64>,
    by_queue: HashMap<u32, QueueSpans>,
}

/// One queue's operations' spans and calls.
struct QueueSpans {
    /// Span starts (calls' starts), sorted.
    starts: Vec<u64>,
    /// For each of `starts`, the latest end of its span and those starting before it.
    latest_ends: Vec<u64>,
    /// The operations' ticks, sorted.
    ticks: Vec<u64>,
}

impl Spans {
    fn of(times: &[OpTime]) -> Spans {
        let mut ends: Vec<u64> = times.iter().map(|t| t.began.saturating_add(SPAN_MAX_NS)).collect();
        let mut next_began: HashMap<u32, u64> = HashMap::new();
        for (i, t) in times.iter().enumerate().rev() {
            if let Some(next) = next_began.insert(t.thread, t.began) {
                // (No earlier than it starts, whatever a hostile file says.)
                ends[i] = ends[i].min(next.max(t.began));
            }
        }
        let mut spans: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        let mut ticks: HashMap<u32, Vec<u64>> = HashMap::new();
        for (t, &end) in times.iter().zip(&ends) {
            spans.entry(t.queue).or_default().push((t.began, end));
            ticks.entry(t.queue).or_default().push(t.ns); // (in time order already)
        }
        let by_queue = spans
            .into_iter()
            .map(|(queue, mut spans)| {
                spans.sort_unstable();
                let latest_ends = spans
                    .iter()
                    .scan(0, |latest, &(_, end)| {
                        *latest = end.max(*latest);
                        Some(*latest)
                    })
                    .collect();
                let starts = spans.into_iter().map(|(start, _)| start).collect();
                (queue, QueueSpans { starts, latest_ends, ticks: ticks.remove(&queue).unwrap_or_default() })
            })
            .collect();
        Spans { ends, by_queue }
    }

    /// When the last operation on op `i`'s queue whose span overlaps its
    /// own ended (its own end at the least): until then, what misled its
    /// read may mislead others.
    fn misled_until(&self, times: &[OpTime], i: usize) -> u64 {
        let end = self.ends[i];
        let QueueSpans { starts, latest_ends, .. } = &self.by_queue[&times[i].queue];
        // Those that start before it ends: those of them that ended before it began end before its end too.
        match starts.partition_point(|&start| start < end) {
            0 => end,
            n => latest_ends[n - 1].max(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u32 = 1;

    /// An operation on queue `Q`, labelled for the assertions.
    #[derive(Debug)]
    struct Timed {
        ns: u64,
        waited: u64,
        thread: u32,
        moved: Moved,
        depth: Option<u64>,
        label: &'static str,
    }

    impl QueueOperation for Timed {
        fn ns(&self) -> u64 {
            self.ns
        }
        fn began_ns(&self) -> u64 {
            self.ns - self.waited
        }
        fn thread(&self) -> u32 {
            self.thread
        }
        fn queue(&self) -> u32 {
            Q
        }
        fn moved(&self) -> Moved {
            self.moved
        }
        fn depth(&self) -> Option<u64> {
            self.depth
        }
    }

    /// An operation that went through at once; sends on thread 1, receives on thread 2.
    fn timed(ns: u64, moved: Moved, depth: Option<u64>, label: &'static str) -> Timed {
        let thread = if matches!(moved, Moved::Sent { .. }) { 1 } else { 2 };
        Timed { ns, waited: 0, thread, moved, depth, label }
    }

    fn send(ns: u64, depth: Option<u64>) -> Timed {
        timed(ns, Moved::Sent { began: ns }, depth, "send")
    }

    fn receive(ns: u64, depth: Option<u64>, label: &'static str) -> Timed {
        timed(ns, Moved::Received { sent: None }, depth, label)
    }

    /// A send whose call began at `call` (its item's id) and waited for room until `ns`.
    fn waited_send(call: u64, ns: u64) -> Timed {
        Timed { waited: ns - call, ..timed(ns, Moved::Sent { began: call }, None, "send") }
    }

    /// Feeds `ops` in the order given; what was settled, in order: receives with the send they took.
    fn settled(order: &mut QueueOrder<Timed>, ops: Vec<Timed>) -> Vec<(&'static str, Option<u64>)> {
        let mut out = Vec::new();
        for op in ops {
            order.push(op, &mut |op, sent| out.push((op.label, sent)));
        }
        order.finish(&mut |op, sent| out.push((op.label, sent)));
        out.into_iter().filter(|(what, _)| *what != "send").collect()
    }

    #[test]
    fn receives_take_sends_in_time_order_whatever_order_threads_came_in() {
        let mut order = QueueOrder::default();
        // Two producers' records, each thread's read whole, then the consumer's.
        let ops = vec![
            send(10_000, Some(1)),
            send(30_000, None),
            send(20_000, Some(2)),
            send(40_000, None),
            receive(25_000, Some(1), "a"),
            receive(26_000, None, "b"),
            receive(45_000, Some(1), "c"),
            receive(50_000, None, "d"),
        ];
        assert_eq!(
            settled(&mut order, ops),
            [("a", Some(10_000)), ("b", Some(20_000)), ("c", Some(30_000)), ("d", Some(40_000))]
        );
    }

    #[test]
    fn a_receive_timed_before_its_send_takes_the_send_racing_it() {
        let mut order = QueueOrder::default();
        let mut seen = Vec::new();
        let ops =
            vec![receive(1_000, None, "early"), send(1_500, None), send(9_000, None), receive(9_100, None, "late")];
        for op in ops {
            order.push(op, &mut |op, sent| seen.push((op.label, sent)));
        }
        order.finish(&mut |op, sent| seen.push((op.label, sent)));
        // The send first, then the receive that took its item.
        assert_eq!(seen, [("send", None), ("early", Some(1_500)), ("send", None), ("late", Some(9_000))]);
    }

    #[test]
    fn items_from_before_the_record_are_counted_from_the_first_depth_read() {
        let mut order = QueueOrder::default();
        // Three items were in the queue before anything was recorded: the first receive leaves two.
        let ops = vec![
            receive(10_000, Some(2), "old 1"),
            send(15_000, Some(3)),
            receive(20_000, None, "old 2"),
            receive(30_000, None, "old 3"),
            receive(40_000, Some(0), "new"),
        ];
        assert_eq!(
            settled(&mut order, ops),
            [("old 1", None), ("old 2", None), ("old 3", None), ("new", Some(15_000))]
        );
    }

    /// A send (`true`) and a receive every 10 µs, alternating, the sends on
    /// thread 1 and the receives on thread 2, each reading the depth, but
    /// those at `unseen` not recorded; and for each receive recorded, the
    /// send whose item it took (`None`: one not recorded), by first in, first out.
    fn alternating(moves: &[bool], unseen: &[usize]) -> (Vec<Timed>, Vec<Option<u64>>) {
        let (mut ops, mut truth, mut queue) = (Vec::new(), Vec::new(), VecDeque::new());
        for (i, &is_send) in moves.iter().enumerate() {
            let (ns, seen) = (10_000 * (i as u64 + 1), !unseen.contains(&i));
            let taken = if is_send {
                queue.push_back(seen.then_some(ns));
                None
            } else {
                queue.pop_front().expect("a receive of an item sent")
            };
            let depth = Some(queue.len() as u64);
            if seen && is_send {
                ops.push(send(ns, depth));
            } else if seen {
                ops.push(receive(ns, depth, "r"));
                truth.push(taken);
            }
        }
        (ops, truth)
    }

    #[test]
    fn operations_not_recorded_are_caught_up_by_the_next_reads() {
        // Two items in, then one item received unseen (recording off), then a
        // send and a receive in turn. One read alone moves nothing (a preempted
        // thread's may look off), and a second that the same operations may have
        // misled moves nothing: the first two receives after the gap take the
        // item before theirs, and from the third on each takes its own.
        let moves: Vec<bool> = [true, true, false].into_iter().chain((0..10).flat_map(|_| [false, true])).collect();
        let (ops, truth) = alternating(&moves, &[2]);
        let got: Vec<Option<u64>> = settled(&mut QueueOrder::default(), ops).into_iter().map(|(_, s)| s).collect();
        assert_eq!(got[..2], [Some(10_000), Some(20_000)], "truth: {truth:?}");
        assert_eq!(got[2..], truth[2..]);
        // One item sent unseen: once two reads agree, an item with no send to
        // name joins the count, after those recorded by then; it is received
        // two items late, and from the fifth receive on each takes its own.
        let moves: Vec<bool> = [true, true, true].into_iter().chain((0..10).flat_map(|_| [false, true])).collect();
        let (ops, truth) = alternating(&moves, &[1]);
        let got: Vec<Option<u64>> = settled(&mut QueueOrder::default(), ops).into_iter().map(|(_, s)| s).collect();
        assert_eq!(truth[..4], [Some(10_000), None, Some(30_000), Some(50_000)]);
        assert_eq!(got[..4], [Some(10_000), Some(30_000), Some(50_000), None]);
        assert_eq!(got[4..], truth[4..]);
        // A thread preempted between its tick and its receive: its read (2 sends
        // later) is off once, and the count stays.
        let ops = vec![
            send(10_000, Some(1)),
            receive(20_000, Some(2), "preempted"),
            send(30_000, None),
            send(40_000, None),
            receive(50_000, Some(1), "next"),
            receive(60_000, None, "last"),
        ];
        let mut order = QueueOrder::default();
        assert_eq!(
            settled(&mut order, ops),
            [("preempted", Some(10_000)), ("next", Some(30_000)), ("last", Some(40_000))]
        );
    }

    #[test]
    fn reads_one_preemption_misled_move_nothing() {
        // As a loaded run recorded it: a queue of 8 kept full. The receiver took
        // its tick for "r2" and was preempted before taking its item; meanwhile
        // the blocked sender's item went in, 20 µs before its tick. Both reads
        // (r2's, 7 left; the send's, 8) are one more than the ticks' order says,
        // but both may have been misled by r2's preemption: the count stays,
        // and every receive takes its own send.
        let full: Vec<Timed> = (0..8).map(|i| send(1_000 + 10 * i, None)).collect();
        let blocked = Timed { waited: 38_000, ..send(40_000, Some(8)) };
        let receives = [(5_000, Some(7), "r1"), (20_000, Some(7), "r2"), (45_000, Some(6), "r3")]
            .into_iter()
            .chain([(45_100, None, "r4"), (45_200, None, "r5"), (45_300, None, "r6")])
            .chain([(45_400, None, "r7"), (45_500, None, "r8"), (45_600, Some(0), "r9")])
            .map(|(ns, depth, label)| receive(ns, depth, label));
        let mut ops: Vec<Timed> = full.into_iter().chain([blocked]).chain(receives).collect();
        ops.sort_by_key(|op| op.ns);
        let got = settled(&mut QueueOrder::default(), ops);
        let sends: Vec<Option<u64>> = (0..8).map(|i| Some(1_000 + 10 * i)).chain([Some(40_000)]).collect();
        assert_eq!(got.iter().map(|&(_, s)| s).collect::<Vec<_>>(), sends, "{got:?}");
    }

    #[test]
    fn a_receive_whose_send_is_recorded_passes_later_waits_for_it() {
        // A queue of 8 kept full. The sender blocked on a ninth item; once room
        // came, its item went in at 20 µs, and the thread was preempted for 30 ms
        // before its tick. The receive that took the item (20.1 µs) is settled two
        // passes before the send's record comes: it waits for that send.
        let mut order = QueueOrder::default();
        let mut seen = Vec::new();
        let mut out = |op: Timed, sent| seen.push((op.label, sent));
        order.passed(0, &mut out);
        let preempted_ns = 30_000_000;
        let full = (0..8).map(|i| send(1_000 + 10 * i, None));
        let depth = |i| (i == 0).then_some(7);
        let receives =
            (0..8).map(|i| receive(5_000 + 1_000 * i, depth(i), "r")).chain([receive(20_100, Some(0), "ninth")]);
        for op in full.chain(receives) {
            order.push(op, &mut out);
        }
        for pass in 1..=3 {
            order.passed(pass * 10_000_000, &mut out);
        }
        for op in [waited_send(1_500, 20_000 + preempted_ns), send(20_000 + preempted_ns + 100, None)] {
            order.push(op, &mut out);
        }
        order.push(receive(20_000 + preempted_ns + 200, Some(0), "tenth"), &mut out);
        order.finish(&mut out);
        let receives: Vec<_> = seen.into_iter().filter(|&(label, _)| label != "send").collect();
        let truth: Vec<_> = (0..8)
            .map(|i| ("r", Some(1_000 + 10 * i)))
            .chain([("ninth", Some(1_500)), ("tenth", Some(20_000 + preempted_ns + 100))])
            .collect();
        assert_eq!(receives, truth);
        assert_eq!(order.late(), 0);
    }

    #[test]
    fn a_send_woken_by_a_receive_races_its_read_however_late_its_tick() {
        // As a loaded run recorded it: a queue of 8 kept full, its sender
        // blocked. Each receive takes an item and wakes the sender, whose item
        // goes in before the receive reads the depth (8 left); the send's tick
        // comes 0.5 µs later, or, twice, 5 µs. Those two reads are far enough
        // apart that neither could have misled the other, both are off by one
        // from the ticks' order, and both are explained by the send under
        // way: the count stays, and every receive takes its own send.
        let full = (0..8).map(|i| send(1_000 + 10 * i, (i == 0).then_some(1)));
        let (lags, reads) = ([5_000, 500, 5_000], [Some(8), None, Some(8)]);
        let mut call = 1_100;
        let mut woken = Vec::new();
        for (k, (lag, read)) in lags.into_iter().zip(reads).enumerate() {
            let at = 20_000 + 10_000 * k as u64;
            woken.push(receive(at, read, "r"));
            woken.push(waited_send(call, at + lag));
            call = at + lag + 10;
        }
        let drained = (0..8).map(|i| receive(100_000 + 100 * i, (i == 7).then_some(0), "r"));
        let mut ops: Vec<Timed> = full.chain(woken).chain(drained).collect();
        let truth: Vec<Option<u64>> = ops
            .iter()
            .filter_map(|op| matches!(op.moved, Moved::Sent { .. }).then_some(op.ns - op.waited))
            .map(Some)
            .collect();
        ops.sort_by_key(|op| op.ns);
        let got: Vec<Option<u64>> = settled(&mut QueueOrder::default(), ops).into_iter().map(|(_, s)| s).collect();
        assert_eq!(got, truth);
    }

    #[test]
    fn a_read_that_racing_operations_can_explain_moves_nothing() {
        let mut order = QueueOrder::default();
        // The receive's read (0 left) came after a send 500 ns later had gone in: 1 left.
        let ops = vec![
            send(10_000, Some(1)),
            receive(20_000, Some(1), "first"),
            send(20_500, Some(1)),
            receive(30_000, Some(0), "second"),
        ];
        assert_eq!(settled(&mut order, ops), [("first", Some(10_000)), ("second", Some(20_500))]);
    }

    #[test]
    fn a_receive_that_names_its_send_takes_that_item() {
        let mut order = QueueOrder::default();
        let named = |ns, sent, label| timed(ns, Moved::Received { sent: Some(sent) }, None, label);
        let ops = vec![
            send(10_000, None),
            send(20_000, None),
            named(30_000, 20_000, "second first"),
            // Named before its send is settled (its tick is later: a race).
            named(35_000, 35_500, "ahead"),
            send(35_500, None),
            receive(40_000, None, "oldest"),
        ];
        assert_eq!(
            settled(&mut order, ops),
            [("second first", Some(20_000)), ("ahead", Some(35_500)), ("oldest", Some(10_000))]
        );
    }

    #[test]
    fn hostile_depths_and_receives_with_no_send_cost_little() {
        let mut order = QueueOrder::default();
        let mut ops = vec![receive(1_000, Some(u64::MAX), "a"), receive(2_000, Some(u64::MAX - 1), "b")];
        // Receives of items nothing sent: each looks for a later send, and none is
        // there (a scan of everything waiting for each would take minutes here).
        ops.extend((0..200_000).map(|i| receive(3_000 + i, None, "r")));
        let got = settled(&mut order, ops);
        assert!(got.iter().all(|&(_, sent)| sent.is_none()));
        assert_eq!(got.len(), 200_002);
    }

    #[test]
    fn a_thread_whose_records_come_later_than_the_hold_is_counted_late() {
        // Keep 4 (twice that may wait): the receiver's twelve operations come
        // first, its sender's thread held up. Eight receives are settled before
        // any send has come and find no item: four wait for sends (as many as
        // may) and take their own, four are taken to have received items no
        // send told of. The eight sends older than the newest of them come late.
        let mut order = QueueOrder::with_keep(4);
        let mut seen = Vec::new();
        let receives = (1..=12).map(|i| receive(i * 10_000 + 1, None, "r"));
        let sends = (1..=12).map(|i| send(i * 10_000, None));
        for op in receives.chain(sends) {
            order.push(op, &mut |op, sent| seen.push((op.label, sent)));
        }
        order.finish(&mut |op, sent| seen.push((op.label, sent)));
        assert_eq!(order.late(), 8);
        let receives: Vec<Option<u64>> = seen.iter().filter(|&&(label, _)| label == "r").map(|&(_, s)| s).collect();
        // (In the order settled: those that could not wait first.)
        assert_eq!(receives[..8], [None, None, None, None, Some(10_000), Some(20_000), Some(30_000), Some(40_000)]);
        // The same operations in time order: none late, every receive paired with its send.
        let mut order = QueueOrder::with_keep(4);
        let ops = (1..=12).flat_map(|i| [send(i * 10_000, None), receive(i * 10_000 + 1, None, "r")]).collect();
        let got = settled(&mut order, ops);
        assert_eq!(order.late(), 0);
        assert_eq!(got, (1..=12).map(|i| ("r", Some(i * 10_000))).collect::<Vec<_>>());
    }

    #[test]
    fn operations_are_settled_while_more_come_in_bounded_memory() {
        let mut order = QueueOrder::with_keep(4);
        let mut done = 0;
        for i in 0..100u64 {
            order.push(send(i * 1_000_000, None), &mut |_, _| done += 1);
            order.push(receive(i * 1_000_000 + 500_000, None, "r"), &mut |_, _| done += 1);
            assert!(order.waiting.len() < 8, "at most twice keep wait");
        }
        assert!(done >= 200 - 8);
        // And by time: an operation HOLD_NS older than the newest is settled.
        let mut order = QueueOrder::default();
        let mut settled_ns = Vec::new();
        order.push(send(0, None), &mut |op, _| settled_ns.push(op.ns));
        order.push(send(3 * HOLD_NS, None), &mut |op, _| settled_ns.push(op.ns));
        assert_eq!(settled_ns, [0]);
        // And as the collector's passes say they are in: those before the pass before the latest.
        order.passed(3 * HOLD_NS + 1, &mut |op, _| settled_ns.push(op.ns));
        assert_eq!(settled_ns, [0]);
        order.passed(3 * HOLD_NS + 2, &mut |op, _| settled_ns.push(op.ns));
        assert_eq!(settled_ns, [0, 3 * HOLD_NS]);
    }

    #[test]
    fn a_pass_held_up_longer_than_the_hold_pairs_every_receive() {
        // A collector held up for a second: one pass reads the receiver's thread,
        // 20 items over the second, and then its sender's. Settled by the hold,
        // the receives older than it would find no item; by the passes, every one
        // takes its own send, and nothing is late.
        let pairs = 20;
        let apart = 50_000_000;
        let receives = || (1..=pairs).map(|i| receive(i * apart + 1, None, "r"));
        let sends = || (1..=pairs).map(|i| send(i * apart, None));
        let run = |passes: bool| {
            let mut order: QueueOrder<Timed> = QueueOrder::default();
            let mut seen = Vec::new();
            if passes {
                order.passed(0, &mut |op, sent| seen.push((op.label, sent)));
            }
            for op in receives().chain(sends()) {
                order.push(op, &mut |op, sent| seen.push((op.label, sent)));
            }
            if passes {
                order.passed(pairs * apart + 2, &mut |op, sent| seen.push((op.label, sent)));
                assert!(seen.is_empty(), "nothing is known to be in before the pass before");
            }
            order.finish(&mut |op, sent| seen.push((op.label, sent)));
            let receives: Vec<_> = seen.into_iter().filter(|&(label, _)| label == "r").collect();
            (order.late(), receives)
        };
        assert_eq!(run(true), (0, (1..=pairs).map(|i| ("r", Some(i * apart))).collect()));
        let (late, receives) = run(false);
        assert!(late > 0 && receives.iter().any(|&(_, sent)| sent.is_none()), "the hold alone mispairs them");
    }
}
