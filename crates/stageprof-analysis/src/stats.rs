//! Running statistics of durations: exact count, total, min, max, mean and
//! deviation; percentiles exact for up to [`EXACT_SAMPLES`] samples, then
//! from a [`LogHistogram`] (within 0.4%), so memory stays bounded.

use crate::histogram::LogHistogram;

/// Samples kept as they are; past this many, percentiles come from the histogram.
pub const EXACT_SAMPLES: usize = 4096;

/// Accumulates durations (or any non-negative integer samples).
#[derive(Clone, Debug, Default)]
pub(crate) struct DurationAcc {
    count: u64,
    total: u128,
    min: u64,
    max: u64,
    // Welford's running mean and squared deviation, for a stable stddev.
    mean: f64,
    m2: f64,
    hist: LogHistogram,
    /// The samples themselves while there are few.
    exact: Vec<u64>,
}

/// Statistics of a set of durations, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DurationStats {
    /// Samples.
    pub count: u64,
    /// Their sum.
    pub total_ns: u64,
    /// The smallest.
    pub min_ns: u64,
    /// The largest.
    pub max_ns: u64,
    /// The mean (exact).
    pub mean_ns: u64,
    /// The standard deviation.
    pub stddev_ns: u64,
    /// Median, nearest rank.
    pub p50_ns: u64,
    /// 95th percentile, nearest rank.
    pub p95_ns: u64,
    /// 99th percentile, nearest rank.
    pub p99_ns: u64,
}

/// Per-call values of one measure with their statistics: what comparing
/// two runs needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Their statistics.
    pub stats: DurationStats,
    /// The values themselves, when there were at most [`EXACT_SAMPLES`]; empty past that.
    pub values: Vec<u64>,
}

impl Samples {
    /// Pools two sets (ranks of one job): moments combined exactly, values
    /// kept while both sides have theirs and the total stays within [`EXACT_SAMPLES`].
    pub fn pool(&self, other: &Samples) -> Samples {
        let (a, b) = (&self.stats, &other.stats);
        let n = a.count + b.count;
        if a.count == 0 || b.count == 0 {
            return if a.count == 0 { other.clone() } else { self.clone() };
        }
        let mean = (a.mean_ns as f64 * a.count as f64 + b.mean_ns as f64 * b.count as f64) / n as f64;
        let spread = |s: &DurationStats| {
            let d = s.mean_ns as f64 - mean;
            s.count as f64 * ((s.stddev_ns as f64).powi(2) + d * d)
        };
        let complete = |s: &Samples| s.values.len() as u64 == s.stats.count;
        let values = if complete(self) && complete(other) && n as usize <= EXACT_SAMPLES {
            [&self.values[..], &other.values[..]].concat()
        } else {
            Vec::new()
        };
        Samples {
            stats: DurationStats {
                count: n,
                total_ns: a.total_ns.saturating_add(b.total_ns),
                min_ns: a.min_ns.min(b.min_ns),
                max_ns: a.max_ns.max(b.max_ns),
                mean_ns: mean.round() as u64,
                stddev_ns: ((spread(a) + spread(b)) / n as f64).sqrt().round() as u64,
                // Percentiles do not pool; the larger side's stand in.
                ..if a.count >= b.count { *a } else { *b }
            },
            values,
        }
    }
}

impl DurationAcc {
    /// The statistics, with the values while they are all kept.
    pub(crate) fn samples(&self) -> Samples {
        let complete = self.exact.len() as u64 == self.count;
        Samples { stats: self.stats(), values: if complete { self.exact.clone() } else { Vec::new() } }
    }

    /// Adds a sample.
    pub(crate) fn record(&mut self, v: u64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.count += 1;
        self.total += u128::from(v);
        let delta = v as f64 - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v as f64 - self.mean);
        self.hist.record(v);
        if self.count as usize <= EXACT_SAMPLES {
            self.exact.push(v);
        } else if !self.exact.is_empty() {
            self.exact = Vec::new();
        }
    }

    /// Adds every sample of `other` (Chan et al.'s pooled mean and deviation).
    pub(crate) fn merge(&mut self, other: &DurationAcc) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let n = self.count + other.count;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n as f64;
        self.mean += delta * other.count as f64 / n as f64;
        let complete = |a: &DurationAcc| a.exact.len() as u64 == a.count;
        if complete(self) && complete(other) && n as usize <= EXACT_SAMPLES {
            self.exact.extend_from_slice(&other.exact);
        } else {
            self.exact = Vec::new();
        }
        self.count = n;
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.hist.merge(&other.hist);
    }

    /// Samples added.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Statistics of the samples added.
    pub(crate) fn stats(&self) -> DurationStats {
        if self.count == 0 {
            return DurationStats::default();
        }
        let mut sorted = self.exact.clone();
        sorted.sort_unstable();
        let q = |p: f64| {
            if sorted.len() as u64 == self.count {
                let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
                return sorted[rank - 1];
            }
            self.hist.quantile(p).unwrap_or(0).clamp(self.min, self.max)
        };
        DurationStats {
            count: self.count,
            total_ns: u64::try_from(self.total).unwrap_or(u64::MAX),
            min_ns: self.min,
            max_ns: self.max,
            mean_ns: (self.total / u128::from(self.count)) as u64,
            stddev_ns: (self.m2 / self.count as f64).sqrt().round() as u64,
            p50_ns: q(0.50),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_accumulators_equal_one_fed_everything() {
        for (split, n) in [(3usize, 10u64), (2000, 5000), (0, 7)] {
            let values: Vec<u64> = (0..n).map(|i| (i * 7919) % 1000 + 1).collect();
            let (mut a, mut b, mut all) = (DurationAcc::default(), DurationAcc::default(), DurationAcc::default());
            values.iter().take(split).for_each(|&v| a.record(v));
            values.iter().skip(split).for_each(|&v| b.record(v));
            values.iter().for_each(|&v| all.record(v));
            a.merge(&b);
            let (m, w) = (a.stats(), all.stats());
            assert_eq!(
                (m.count, m.total_ns, m.min_ns, m.max_ns, m.mean_ns),
                (w.count, w.total_ns, w.min_ns, w.max_ns, w.mean_ns)
            );
            assert!((m.stddev_ns as i64 - w.stddev_ns as i64).abs() <= 1, "{m:?} {w:?}");
            assert_eq!((m.p50_ns, m.p95_ns, m.p99_ns), (w.p50_ns, w.p95_ns, w.p99_ns), "split {split} of {n}");
        }
    }

    #[test]
    fn exact_moments_of_known_samples() {
        let mut acc = DurationAcc::default();
        for v in [2, 4, 4, 4, 5, 5, 7, 9] {
            acc.record(v);
        }
        let s = acc.stats();
        assert_eq!((s.count, s.total_ns, s.min_ns, s.max_ns, s.mean_ns), (8, 40, 2, 9, 5));
        assert_eq!(s.stddev_ns, 2);
        assert_eq!((s.p50_ns, s.p95_ns, s.p99_ns), (4, 9, 9));
    }

    #[test]
    fn percentiles_are_exact_for_few_samples_and_close_for_many() {
        let mut few = DurationAcc::default();
        for v in [98_340_000u64, 98_530_000, 98_770_000] {
            few.record(v);
        }
        let s = few.stats();
        assert_eq!((s.p50_ns, s.p95_ns, s.p99_ns), (98_530_000, 98_770_000, 98_770_000));
        let mut many = DurationAcc::default();
        for v in 1..=10_000u64 {
            many.record(v * 1_000_003);
        }
        let p95 = many.stats().p95_ns as f64;
        assert!((p95 - 9_500_028_500.0).abs() / 9_500_028_500.0 < 0.004, "{p95}");
        assert!(many.exact.is_empty(), "samples are dropped once the histogram takes over");
    }

    #[test]
    fn empty_is_all_zero() {
        assert_eq!(DurationAcc::default().stats(), DurationStats::default());
    }
}
