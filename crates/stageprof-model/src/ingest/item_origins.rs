//! Where the items an instrumented queue delivers entered the pipeline, for
//! the end-to-end latency.
//!
//! An item's id on a queue is the tick its send began: Python's queue
//! carries it with the item, and for Rust's, which carry nothing, the
//! reader pairs each receive with its send (`queue_order`). An item a
//! thread sends is taken to be made from the last item that thread
//! received, and a thread that received none is where items enter; so where
//! an item entered is found by following ids back, which this module does
//! as operations are settled. A receive can still come before the send
//! that brought its item (a Python item named before its send was settled):
//! then the receive, and whatever its thread sends after it, wait until
//! that send comes. A receive can also come after a later one of its
//! thread (it waited in `queue_order` for its send's record): the later one
//! stays the thread's last, by their ticks.

use foldhash::{HashMap, HashMapExt};

/// An item on a queue: the queue's name and the tick its send began.
pub type ItemId = (u32, u64);

/// Where an item entered the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// At this tick.
    At(u64),
    /// Not known: sent while nothing recorded, or made from such an item.
    Unknown,
    /// Where the item with this id entered, once its send is decoded.
    As(ItemId),
}

/// What waits for the send of an item received before its send was decoded.
struct Waiting<P> {
    /// The receives waiting, with what to deliver when their origin is known.
    receives: Vec<P>,
    /// Items sent by threads after they received it, while it was waited for.
    sends: Vec<ItemId>,
}

impl<P> Default for Waiting<P> {
    fn default() -> Self {
        Waiting { receives: Vec::new(), sends: Vec::new() }
    }
}

/// Most items kept sent and not yet received, and most items waited for;
/// past either, the oldest half is let go (their receives get no age).
const MAX_KEPT: usize = 1 << 20;

/// Follows items through queues. `P` is what a receive delivers once its
/// item's entry tick is known (`None`: not known).
pub struct ItemOrigins<P> {
    in_flight: HashMap<ItemId, Origin>,
    /// Per thread, the tick of the last receive it made and where that
    /// receive's item entered (absent: it received none).
    last_received: HashMap<u32, (u64, Origin)>,
    waiting: HashMap<ItemId, Waiting<P>>,
    /// [`MAX_KEPT`], lower in tests.
    max_kept: usize,
}

impl<P> Default for ItemOrigins<P> {
    fn default() -> Self {
        ItemOrigins::with_limit(MAX_KEPT)
    }
}

impl<P> ItemOrigins<P> {
    /// Keeping at most `max_kept` items in flight and as many waited for.
    pub fn with_limit(max_kept: usize) -> Self {
        ItemOrigins { in_flight: HashMap::new(), last_received: HashMap::new(), waiting: HashMap::new(), max_kept }
    }

    /// `thread` sent an item on `queue` with a send that began at tick
    /// `began`; receives that waited for it are delivered.
    pub fn sent(&mut self, queue: u32, thread: u32, began: u64, deliver: &mut impl FnMut(P, Option<u64>)) {
        let id = (queue, began);
        let origin = match self.last_received.get(&thread) {
            None => Origin::At(began),
            // A thread that took its own item back cannot be waiting for it.
            Some(&(_, Origin::As(waited))) if waited == id => Origin::Unknown,
            Some(&(_, origin)) => origin,
        };
        match self.waiting.remove(&id) {
            Some(waiting) => self.settle(id, waiting, origin, deliver),
            None => self.keep(id, origin),
        }
    }

    /// `thread` received on `queue`, at tick `at`, the item whose send
    /// began at tick `sent` (`None`: not recorded then); `pending` is
    /// delivered with the item's entry tick, now or once the send is decoded.
    /// A receive can come after a later one of its thread (one that waited
    /// for its send's record): the later one stays the thread's last.
    pub fn received(
        &mut self,
        queue: u32,
        thread: u32,
        at: u64,
        sent: Option<u64>,
        pending: P,
        deliver: &mut impl FnMut(P, Option<u64>),
    ) {
        let origin = match sent {
            None => Origin::Unknown,
            Some(tick) => self.in_flight.remove(&(queue, tick)).unwrap_or(Origin::As((queue, tick))),
        };
        let last = self.last_received.entry(thread).or_insert((at, origin));
        if last.0 <= at {
            *last = (at, origin);
        }
        match origin {
            Origin::At(tick) => deliver(pending, Some(tick)),
            Origin::Unknown => deliver(pending, None),
            Origin::As(id) => {
                if self.waiting.len() >= self.max_kept && !self.waiting.contains_key(&id) {
                    self.let_go_oldest_waiting(deliver);
                }
                self.waiting.entry(id).or_default().receives.push(pending);
            }
        }
    }

    /// Delivers every receive still waiting, without an origin: their sends were never decoded.
    pub fn finish(&mut self, deliver: &mut impl FnMut(P, Option<u64>)) {
        for (_, waiting) in self.waiting.drain() {
            waiting.receives.into_iter().for_each(|p| deliver(p, None));
        }
    }

    /// Items received whose sends have not been decoded.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Items sent and not yet received.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Notes item `id`, just sent, as entered at `origin`.
    fn keep(&mut self, id: ItemId, origin: Origin) {
        if let Origin::As(waited) = origin {
            self.waiting.entry(waited).or_default().sends.push(id);
        }
        if self.in_flight.len() >= self.max_kept {
            // Items sent and never received (their receives not recorded): the oldest go.
            let cut = oldest_half(self.in_flight.keys());
            self.in_flight.retain(|&(_, tick), _| tick >= cut);
        }
        self.in_flight.insert(id, origin);
    }

    /// Item `id`'s send is decoded: it entered at `origin`, and so did
    /// everything that waited for it.
    fn settle(&mut self, id: ItemId, waiting: Waiting<P>, origin: Origin, deliver: &mut impl FnMut(P, Option<u64>)) {
        for (_, last) in self.last_received.values_mut().filter(|(_, o)| *o == Origin::As(id)) {
            *last = origin;
        }
        for sent in waiting.sends {
            if self.in_flight.get(&sent) == Some(&Origin::As(id)) {
                self.keep(sent, origin);
            }
        }
        match origin {
            Origin::At(tick) => waiting.receives.into_iter().for_each(|p| deliver(p, Some(tick))),
            Origin::Unknown => waiting.receives.into_iter().for_each(|p| deliver(p, None)),
            Origin::As(other) => self.waiting.entry(other).or_default().receives.extend(waiting.receives),
        }
    }

    /// Too many items waited for (sends never decoded): the oldest half's receives go without an age.
    #[cold]
    fn let_go_oldest_waiting(&mut self, deliver: &mut impl FnMut(P, Option<u64>)) {
        let cut = oldest_half(self.waiting.keys());
        let old: Vec<ItemId> = self.waiting.keys().filter(|&&(_, tick)| tick < cut).copied().collect();
        for id in old {
            if let Some(waiting) = self.waiting.remove(&id) {
                self.settle(id, waiting, Origin::Unknown, deliver);
            }
        }
    }
}

/// The send tick that splits `ids` into their older and newer halves.
fn oldest_half<'a>(ids: impl Iterator<Item = &'a ItemId>) -> u64 {
    let mut ticks: Vec<u64> = ids.map(|&(_, tick)| tick).collect();
    let middle = ticks.len() / 2;
    ticks.select_nth_unstable(middle);
    ticks[middle]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` (a thread sends or receives on queue 1; a receive's
    /// tick is its step's place) and returns each receive's label with its
    /// entry tick, in the order they were delivered, after `finish`.
    fn run(steps: &[Step]) -> Vec<(&'static str, Option<u64>)> {
        let mut origins = ItemOrigins::default();
        let mut out = Vec::new();
        let mut deliver = |label, origin| out.push((label, origin));
        for (at, step) in steps.iter().enumerate() {
            match *step {
                Step::Send { thread, began } => origins.sent(1, thread, began, &mut deliver),
                Step::Receive { thread, sent, label } => {
                    origins.received(1, thread, at as u64, sent, label, &mut deliver)
                }
            }
        }
        origins.finish(&mut deliver);
        out
    }

    enum Step {
        Send { thread: u32, began: u64 },
        Receive { thread: u32, sent: Option<u64>, label: &'static str },
    }
    use Step::{Receive, Send};

    #[test]
    fn an_item_keeps_the_entry_of_the_item_it_was_made_from() {
        // Thread 1 makes items at 10 and 20; thread 2 passes each on after receiving it; thread 3 takes them.
        let steps = [
            Send { thread: 1, began: 10 },
            Receive { thread: 2, sent: Some(10), label: "first at 2" },
            Send { thread: 2, began: 15 },
            Send { thread: 1, began: 20 },
            Receive { thread: 3, sent: Some(15), label: "first at 3" },
            Receive { thread: 2, sent: Some(20), label: "second at 2" },
            Send { thread: 2, began: 25 },
            Receive { thread: 3, sent: Some(25), label: "second at 3" },
        ];
        let want =
            [("first at 2", Some(10)), ("first at 3", Some(10)), ("second at 2", Some(20)), ("second at 3", Some(20))];
        assert_eq!(run(&steps), want);
    }

    #[test]
    fn receives_decoded_before_their_sends_wait_for_them() {
        // The same pipeline, decoded a thread at a time, the last thread first.
        let steps = [
            Receive { thread: 3, sent: Some(15), label: "first at 3" },
            Receive { thread: 3, sent: Some(25), label: "second at 3" },
            Receive { thread: 2, sent: Some(10), label: "first at 2" },
            Send { thread: 2, began: 15 },
            Receive { thread: 2, sent: Some(20), label: "second at 2" },
            Send { thread: 2, began: 25 },
            Send { thread: 1, began: 10 },
            Send { thread: 1, began: 20 },
        ];
        let mut got = run(&steps);
        got.sort();
        let want =
            [("first at 2", Some(10)), ("first at 3", Some(10)), ("second at 2", Some(20)), ("second at 3", Some(20))];
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_entries_pass_on_and_unsent_items_end_without_one() {
        let steps = [
            // Sent while nothing recorded: thread 2's next item has no known entry either.
            Receive { thread: 2, sent: None, label: "unrecorded" },
            Send { thread: 2, began: 30 },
            Receive { thread: 3, sent: Some(30), label: "made from it" },
            // A send never decoded (its part of the file not kept).
            Receive { thread: 3, sent: Some(99), label: "lost send" },
        ];
        let want = [("unrecorded", None), ("made from it", None), ("lost send", None)];
        assert_eq!(run(&steps), want);
    }

    #[test]
    fn a_receive_that_comes_after_a_later_one_of_its_thread_leaves_the_later_as_its_last() {
        // Thread 2 received item 10 at tick 30, and item 20 at tick 40, which
        // came first (its receive at 30 waited for its send's record); the
        // item it sends after both is made from item 20.
        let mut origins = ItemOrigins::default();
        let mut out = Vec::new();
        let mut deliver = |label, origin| out.push((label, origin));
        origins.sent(1, 1, 10, &mut deliver);
        origins.sent(1, 1, 20, &mut deliver);
        origins.received(1, 2, 40, Some(20), "second", &mut deliver);
        origins.received(1, 2, 30, Some(10), "first", &mut deliver);
        origins.sent(2, 2, 45, &mut deliver);
        origins.received(2, 3, 50, Some(45), "passed on", &mut deliver);
        assert_eq!(out, [("second", Some(20)), ("first", Some(10)), ("passed on", Some(20))]);
    }

    #[test]
    fn the_same_tick_on_two_queues_is_two_items() {
        let mut origins = ItemOrigins::default();
        let mut out = Vec::new();
        let mut deliver = |label, origin| out.push((label, origin));
        origins.sent(1, 1, 50, &mut deliver);
        origins.received(1, 2, 60, Some(50), "queue 1", &mut deliver);
        origins.sent(2, 2, 50, &mut deliver);
        origins.received(2, 3, 60, Some(50), "queue 2", &mut deliver);
        assert_eq!(out, [("queue 1", Some(50)), ("queue 2", Some(50))]);
        assert_eq!((origins.in_flight(), origins.waiting()), (0, 0));
    }

    #[test]
    fn what_is_kept_stays_bounded() {
        let mut origins = ItemOrigins::with_limit(4);
        let mut out = Vec::new();
        let mut deliver = |label: u64, origin| out.push((label, origin));
        // Items sent and never received, and receives whose sends never come.
        (1..=10).for_each(|t| origins.sent(1, 1, t, &mut deliver));
        assert!(origins.in_flight() <= 4, "{}", origins.in_flight());
        (100..110).for_each(|t| origins.received(1, 2, t + 1, Some(t), t, &mut deliver));
        assert!(origins.waiting() <= 4, "{}", origins.waiting());
        // The newest sent item is still known; the receives let go were delivered without an origin.
        origins.received(1, 3, 11, Some(10), 10, &mut deliver);
        origins.finish(&mut deliver);
        assert_eq!(out.len(), 11);
        assert!(out.contains(&(10, Some(10))), "{out:?}");
        assert_eq!(out.iter().filter(|(_, o)| o.is_none()).count(), 10);
    }
}
