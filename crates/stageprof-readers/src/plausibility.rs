//! Which times read from a trace can be believed.
//!
//! One absurd number (a kernel at `ts: 0` in a trace of epoch times, a
//! frame with a negative or 1e300 µs duration) would otherwise stretch the
//! run to decades or wipe out a frame's GPU work. Every timed event is held
//! against a window of plausible times: a day either side of the median
//! start of the trace's first [`LEARNING_EVENTS`] timed events. Events
//! outside it, with a negative duration, or with a time that is not a
//! number, are left out of every figure, counted by kind, and the first of
//! each kind is named (category, name, byte offset) in a warning.

/// Timed events whose median fixes the window.
pub(crate) const LEARNING_EVENTS: usize = 1001;

/// How far from the median a time may lie: one day.
pub(crate) const PLAUSIBLE_NS: i64 = 86_400 * 1_000_000_000;

pub(crate) use stageprof_model::warning::Implausible;
use stageprof_model::Warning;

/// The first event left out for a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Offender {
    pub category: String,
    pub name: String,
    pub offset: u64,
}

/// The plausible window, and what fell outside it.
#[derive(Debug, Default)]
pub(crate) struct Plausibility {
    window: Option<(i64, i64)>,
    counts: [u64; 3],
    first: [Option<Offender>; 3],
}

impl Plausibility {
    /// Fixes the window around the median of `starts` (all times pass when there are none).
    pub(crate) fn fix(&mut self, starts: &mut [i64]) {
        self.window = Some(if starts.is_empty() {
            (i64::MIN, i64::MAX)
        } else {
            let mid = starts.len() / 2;
            let median = *starts.select_nth_unstable(mid).1;
            (median.saturating_sub(PLAUSIBLE_NS), median.saturating_add(PLAUSIBLE_NS))
        });
    }

    pub(crate) fn is_fixed(&self) -> bool {
        self.window.is_some()
    }

    /// Whether an event from `start` to `end` lies in the window.
    pub(crate) fn check(&self, start: i64, end: i64) -> Result<(), Implausible> {
        if end < start {
            return Err(Implausible::NegativeDuration);
        }
        let (lo, hi) = self.window.unwrap_or((i64::MIN, i64::MAX));
        if start < lo || end > hi {
            return Err(Implausible::FarFromTrace);
        }
        Ok(())
    }

    /// Counts an event left out, naming it if it is the first of its kind.
    pub(crate) fn leave_out(&mut self, why: Implausible, offender: impl FnOnce() -> Offender) {
        // ALL lists the variants in declaration order.
        let i = why as usize;
        self.counts[i] += 1;
        if self.first[i].is_none() {
            self.first[i] = Some(offender());
        }
    }

    /// One warning per reason that left events out.
    pub(crate) fn warnings(&self) -> impl Iterator<Item = Warning> + '_ {
        Implausible::ALL.iter().zip(&self.counts).zip(&self.first).filter(|((_, &n), _)| n > 0).map(
            |((&reason, &count), first)| {
                let first = first.as_ref().expect("counted with its first");
                Warning::Implausible {
                    count,
                    reason,
                    category: first.category.clone(),
                    name: first.name.clone(),
                    byte_offset: first.offset,
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_a_day_around_the_median_and_offenders_are_named_once() {
        let day = PLAUSIBLE_NS;
        let mut p = Plausibility::default();
        assert_eq!(p.check(0, 1), Ok(()), "before the window is fixed, every ordered interval passes");
        let mut starts = vec![10 * day, 10 * day + 5, 0, 10 * day + 9, 10 * day + 2];
        p.fix(&mut starts);
        // The median is 10 days + 2 ns: the window is a day either side of it.
        assert_eq!(p.check(9 * day + 2, 11 * day + 2), Ok(()));
        assert_eq!(p.check(9 * day + 1, 10 * day), Err(Implausible::FarFromTrace));
        assert_eq!(p.check(10 * day, 11 * day + 3), Err(Implausible::FarFromTrace));
        assert_eq!(p.check(10 * day, 10 * day - 1), Err(Implausible::NegativeDuration));
        let named = |n: &str| Offender { category: "kernel".into(), name: n.into(), offset: 7 };
        p.leave_out(Implausible::FarFromTrace, || named("first"));
        p.leave_out(Implausible::FarFromTrace, || named("second"));
        let warnings: Vec<Warning> = p.warnings().collect();
        assert_eq!(warnings.len(), 1);
        assert!(
            matches!(&warnings[0], Warning::Implausible { count: 2, reason: Implausible::FarFromTrace, name, byte_offset: 7, .. } if name == "first"),
            "{warnings:?}"
        );
    }
}
