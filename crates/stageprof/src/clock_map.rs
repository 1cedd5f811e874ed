//! Another clock's nanoseconds mapped onto the recorder's ticks: CUPTI's
//! (kernels' times) and the wall clock (torch's allocator trace).
//!
//! The ticks' rate was calibrated over 20 ms when the process started, a few
//! parts in 10^5 off: mapped once, at a session's start, kernels drifted
//! against the stages that launched them by tens of microseconds a second of
//! the run (seen: a kernel launched 14 us after the last frame ended, 1.7 s
//! in, counted in that frame), tens of milliseconds an hour. So a map is
//! anchored again (both clocks read together) before each batch it maps,
//! and its rate is fitted between the first anchor and the latest; times are
//! mapped from the latest, which they are at most a batch away from.

use crate::clock::{clock, ticks};

/// Both clocks read at one moment: the other clock's nanoseconds and the recorder's ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Anchor {
    pub ns: u64,
    pub ticks: u64,
}

impl Anchor {
    /// Reads both clocks now, `read` being the other: the tightest of a few brackets of ticks around one reading.
    pub(crate) fn now(read: impl Fn() -> u64) -> Anchor {
        let mut best = (u64::MAX, Anchor { ns: 0, ticks: 0 });
        for _ in 0..5 {
            let before = ticks();
            let ns = read();
            let after = ticks();
            if after - before < best.0 {
                best = (after - before, Anchor { ns, ticks: before + (after - before) / 2 });
            }
        }
        best.1
    }
}

/// Shortest stretch between anchors that the rate is fitted over; before it, the calibrated rate holds.
// Re-anchoring serves CUPTI's long-lived map; the wall clock's maps are made per batch.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const MIN_BASELINE_NS: u64 = 100_000_000;

pub(crate) struct ClockMap {
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    first: Anchor,
    latest: Anchor,
    ticks_per_ns: f64,
}

impl ClockMap {
    /// A map anchored at `anchor`, at the calibrated rate until a later anchor is far enough.
    pub(crate) fn new(anchor: Anchor) -> ClockMap {
        ClockMap::at_rate(anchor, clock().ticks_per_second as f64 / 1e9)
    }

    fn at_rate(anchor: Anchor, ticks_per_ns: f64) -> ClockMap {
        ClockMap { first: anchor, latest: anchor, ticks_per_ns }
    }

    /// Anchors the map again at `anchor`, read now.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn anchor(&mut self, anchor: Anchor) {
        let baseline_ns = anchor.ns.saturating_sub(self.first.ns);
        if baseline_ns >= MIN_BASELINE_NS && anchor.ticks > self.first.ticks {
            self.ticks_per_ns = (anchor.ticks - self.first.ticks) as f64 / baseline_ns as f64;
        }
        self.latest = anchor;
    }

    /// The other clock's `ns` in ticks.
    pub(crate) fn ticks(&self, ns: u64) -> u64 {
        let d = (ns as f64 - self.latest.ns as f64) * self.ticks_per_ns;
        (self.latest.ticks as f64 + d).max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks at 3 GHz plus 30 parts in a million, from tick 5,000 at CUPTI's 1 s.
    fn truth(ns: u64) -> u64 {
        5_000 + ((ns - 1_000_000_000) as f64 * 3.00009) as u64
    }

    #[test]
    fn kernels_stay_on_the_stages_clock_through_a_long_run() {
        let at = |ns: u64| Anchor { ns, ticks: truth(ns) };
        // Calibrated at 3 GHz flat: 30 ppm off.
        let mut map = ClockMap::at_rate(at(1_000_000_000), 3.0);
        let once = ClockMap::at_rate(at(1_000_000_000), 3.0);
        // A flush every 200 ms for an hour; a kernel 150 ms before each anchor.
        for pass in 1..=18_000u64 {
            let now = 1_000_000_000 + pass * 200_000_000;
            map.anchor(at(now));
            let kernel = now - 150_000_000;
            let error = map.ticks(kernel).abs_diff(truth(kernel));
            assert!(error <= 2, "pass {pass}: {error} ticks off");
        }
        // Mapped once at the start, the last kernel is off by 30 ppm of an hour: over 100 ms of ticks.
        let kernel = 1_000_000_000 + 18_000 * 200_000_000 - 150_000_000;
        assert!(once.ticks(kernel).abs_diff(truth(kernel)) > 300_000_000);
    }

    #[test]
    fn before_the_baseline_the_calibrated_rate_holds() {
        let mut map = ClockMap::at_rate(Anchor { ns: 0, ticks: 0 }, 2.0);
        map.anchor(Anchor { ns: 50_000_000, ticks: 100_000_100 });
        // 50 ms in: mapped from the latest anchor at the calibrated rate.
        assert_eq!(map.ticks(40_000_000), 80_000_100);
    }
}
