//! A queue's depth over time, folded as it comes so that its memory stays
//! bounded however long the run (a queue passes millions of items an hour).
//!
//! Samples reach the aggregator nearly in time order (a racing send may
//! come just before the receive timed ahead of it): the newest [`KEEP`]
//! wait in a buffer and are folded oldest first once more come, which keeps
//! the order exact. Folding keeps the time spent at each depth
//! (from which the time-weighted mean and the shares full and empty follow,
//! whatever the capacity turns out to be) and a coarse series for the
//! report: buckets of a width that doubles whenever there are too many,
//! each with its first time and its most items, so that no moment full is
//! lost to the thinning. A sample older than what was already folded (a
//! thread read very late) counts in the depth's maximum and its bucket, but
//! not in the time spent at each depth.
//!
//! An operation that did not read the depth (each end reads it at most once
//! every 10 µs) moves the count on from the sample before it in time: one
//! more for a send, one fewer for a receive. The count is kept signed, so a
//! receive whose tick precedes its item's send (both were read before the
//! channel moved the item) comes out right once the send is counted; the
//! depth reported is never below zero.

use std::collections::BTreeMap;

/// Samples kept unfolded, in arrival order.
const KEEP: usize = 1 << 16;
/// Most buckets kept before their width doubles: several to each of the
/// report's points (300), so that the buckets' edges shift a point little.
const MAX_BUCKETS: usize = 1_200;

/// A queue's depth after an operation: as read, or counted on from the one before.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DepthAfter {
    Read(u32),
    OneMore,
    OneFewer,
}

#[derive(Clone, Default)]
pub(crate) struct DepthSeries {
    recent: Vec<(u64, DepthAfter)>,
    /// The first sample folded, and the last: the depth held from its time on.
    first: Option<u64>,
    last: Option<(u64, u32)>,
    /// Items by the count so far: below zero while a receive is counted before its send.
    level: i64,
    /// Nanoseconds spent at each depth.
    time_at: BTreeMap<u32, u64>,
    max: u32,
    /// `(first time, most items)` per bucket of `width` ns from `first`.
    buckets: Vec<(u64, u32)>,
    width: u64,
}

/// What a queue's depth did over the run.
pub(crate) struct DepthSummary {
    /// From the first sample to the last.
    pub span_ns: u64,
    /// Items in the queue, weighted by time.
    pub mean: f64,
    /// The most items it held.
    pub max: u64,
    /// Time with at least `capacity` items (bounded queues) and with none.
    pub full_ns: Option<u64>,
    pub empty_ns: u64,
    /// At most `points` points: `(time, most items from then to the next)`.
    pub over_time: Vec<(u64, u64)>,
}

impl DepthSeries {
    /// The queue's depth after an operation at `t` ns.
    pub(crate) fn push(&mut self, t: u64, depth: DepthAfter) {
        self.recent.push((t, depth));
        if self.recent.len() >= 2 * KEEP {
            self.recent.sort_by_key(|&(t, _)| t);
            let older: Vec<(u64, DepthAfter)> = self.recent.drain(..KEEP).collect();
            older.into_iter().for_each(|s| self.fold(s));
        }
    }

    /// Everything, folded: the figures for `capacity`, the over-time series in at most `points` slices.
    pub(crate) fn summary(&self, capacity: Option<u64>, points: usize) -> DepthSummary {
        let mut all = self.clone();
        let mut recent = std::mem::take(&mut all.recent);
        recent.sort_by_key(|&(t, _)| t);
        recent.into_iter().for_each(|s| all.fold(s));
        let span_ns = match (all.first, all.last) {
            (Some(first), Some((last, _))) => last - first,
            _ => 0,
        };
        // A bounded queue never holds more than its capacity: a count above it
        // (a read taken after its thread was preempted, counted on) is held to it.
        let held = |d: u64| capacity.map_or(d, |c| d.min(c));
        let area: u128 = all.time_at.iter().map(|(&d, &ns)| u128::from(held(u64::from(d))) * u128::from(ns)).sum();
        let time_where = |keep: &dyn Fn(u64) -> bool| -> u64 {
            all.time_at.iter().filter(|(&d, _)| keep(u64::from(d))).map(|(_, &ns)| ns).sum()
        };
        DepthSummary {
            span_ns,
            mean: if span_ns == 0 { 0.0 } else { area as f64 / span_ns as f64 },
            max: held(u64::from(all.max)),
            full_ns: capacity.map(|c| time_where(&|d| d >= c)),
            empty_ns: time_where(&|d| d == 0),
            over_time: all.over_time(span_ns, points).into_iter().map(|(t, d)| (t, held(d))).collect(),
        }
    }

    fn fold(&mut self, (t, after): (u64, DepthAfter)) {
        let level = match after {
            DepthAfter::Read(d) => i64::from(d),
            DepthAfter::OneMore => self.level + 1,
            DepthAfter::OneFewer => self.level - 1,
        };
        let depth = level.clamp(0, i64::from(u32::MAX)) as u32;
        self.max = self.max.max(depth);
        let first = *self.first.get_or_insert(t);
        // From when the count holds, if this sample moves it.
        let since = match self.last {
            Some((last, held)) if t >= last => {
                *self.time_at.entry(held).or_default() += t - last;
                Some(t)
            }
            // Older than what was folded: a read says nothing of the count now,
            // but an operation counted late still moved it.
            Some(_) if matches!(after, DepthAfter::Read(_)) => None,
            Some((last, _)) => Some(last),
            None => Some(t),
        };
        if let Some(since) = since {
            self.last = Some((since, depth));
            self.level = level;
        }
        self.bucket(t.max(first) - first, t, depth);
    }

    /// Puts the sample `since` ns after the first into its bucket, widening them as needed.
    fn bucket(&mut self, since: u64, t: u64, depth: u32) {
        self.width = self.width.max(1);
        let mut index = (since / self.width) as usize;
        while index >= MAX_BUCKETS {
            self.widen();
            index = (since / self.width) as usize;
        }
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, (u64::MAX, 0));
        }
        let b = &mut self.buckets[index];
        *b = (b.0.min(t), b.1.max(depth));
    }

    /// Doubles the buckets' width, merging them in pairs.
    fn widen(&mut self) {
        self.width *= 2;
        let merged =
            self.buckets.chunks(2).map(|pair| pair.iter().fold((u64::MAX, 0), |a, b| (a.0.min(b.0), a.1.max(b.1))));
        self.buckets = merged.collect();
    }

    /// The buckets in at most `points` equal slices of `span_ns`: each at its first time, with its most items.
    fn over_time(&self, span_ns: u64, points: usize) -> Vec<(u64, u64)> {
        let Some(first) = self.first else { return Vec::new() };
        let slice = span_ns / points as u64 + 1;
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (i, &(t, d)) in self.buckets.iter().enumerate().filter(|(_, b)| b.0 != u64::MAX) {
            let start = first + (i as u64 * self.width) / slice * slice;
            match out.last_mut() {
                Some(p) if p.0 >= start => p.1 = p.1.max(u64::from(d)),
                _ => out.push((t, u64::from(d))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[(u64, u32)]) -> DepthSeries {
        let mut s = DepthSeries::default();
        samples.iter().for_each(|&(t, d)| s.push(t, DepthAfter::Read(d)));
        s
    }

    #[test]
    fn over_time_keeps_each_slices_most() {
        let samples: Vec<(u64, u32)> = (0..3000u64).map(|t| (t, if t == 1234 { 9 } else { (t % 3) as u32 })).collect();
        let points = series(&samples).summary(None, 300).over_time;
        assert!(points.len() <= 300, "{}", points.len());
        assert_eq!(points.iter().map(|p| p.1).max(), Some(9));
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(series(&[(5, 1)]).summary(None, 300).over_time, [(5, 1)]);
        assert!(series(&[]).summary(None, 300).over_time.is_empty());
    }

    #[test]
    fn a_count_above_the_capacity_is_held_to_it() {
        // A queue of 2 counted at 3 for 10 ns (a read taken late, counted on).
        let d = series(&[(0, 1), (10, 3), (20, 2), (30, 0)]).summary(Some(2), 300);
        assert_eq!((d.max, d.full_ns, d.empty_ns), (2, Some(20), 0));
        assert!((d.mean - (10.0 + 20.0 + 20.0) / 30.0).abs() < 1e-12, "{}", d.mean);
        assert!(d.over_time.iter().all(|p| p.1 <= 2), "{:?}", d.over_time);
        // Unbounded: as counted.
        assert_eq!(series(&[(0, 1), (10, 3)]).summary(None, 300).max, 3);
    }

    #[test]
    fn a_long_run_folds_into_bounded_memory_with_exact_sums() {
        // Two threads' samples, read a pass of 1,000 at a time, the later thread
        // first: depth cycles 0,1,2,3 every 10 ns; 4 million samples.
        let mut s = DepthSeries::default();
        let n = 4_000_000u64;
        for pass in 0..n / 2_000 {
            for thread in [1, 0] {
                for i in 0..1_000 {
                    let k = pass * 2_000 + i * 2 + thread;
                    s.push(k * 10, DepthAfter::Read((k % 4) as u32));
                }
            }
        }
        assert!(s.recent.len() < 2 * KEEP && s.buckets.len() <= MAX_BUCKETS && s.time_at.len() == 4);
        let d = s.summary(Some(3), 300);
        // By hand: each sample holds its depth 10 ns, but the last (a 3) none.
        let span = (n - 1) * 10;
        assert_eq!(d.span_ns, span);
        assert_eq!((d.max, d.full_ns, d.empty_ns), (3, Some(9_999_990), 10_000_000));
        let area = 10_000_000 + 2 * 10_000_000 + 3 * 9_999_990;
        assert!((d.mean - area as f64 / span as f64).abs() < 1e-12, "{}", d.mean);
        assert!(d.over_time.len() <= 300 && d.over_time.iter().all(|p| p.1 == 3));
    }
}
