//! Memory over time, per allocator: a bounded series of levels for drawing,
//! and the peak with the innermost stage call it fell in.
//!
//! Levels come from two places: exact samples (PyTorch's allocator events,
//! handed over before any span), and stageprof's own stage calls, whose
//! heap is known at their start and end and whose peak is known only to lie
//! somewhere within the call. Either way the peak is an interval, and the
//! stage that holds it is the deepest call whose span covers the interval.

use std::collections::BTreeMap;

use stageprof_model::{MemoryLevel, MemoryPool, PathId, Span, SpanKind};

/// Points drawn per pool at most; beyond, neighbouring levels are grouped
/// and each group drawn as its lowest and highest level.
pub const MAX_POINTS: usize = 4096;

/// An allocator's series and peak, as the summary shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryTimeline {
    /// Which allocator.
    pub pool: MemoryPool,
    /// `(time_ns, bytes)` in time order, at most [`MAX_POINTS`]; where
    /// neighbouring levels were grouped, the group's lowest and highest
    /// level at the time of its first.
    pub points: Vec<(u64, i64)>,
    /// Its highest level.
    pub peak: MemoryPeak,
}

/// The highest level, when it was, and who held it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPeak {
    /// Bytes in use at the peak.
    pub bytes: i64,
    /// The peak fell within `start_ns..=end_ns` (equal when sampled at an instant).
    pub start_ns: u64,
    /// End of the span the peak lies in.
    pub end_ns: u64,
    /// Index into [`crate::Summary::stages`] of the innermost stage whose call covers the peak.
    pub stage: Option<usize>,
}

/// Consecutive levels (in arrival order) drawn as one: their range.
#[derive(Clone, Copy, Debug)]
struct Group {
    first_ns: u64,
    low: i64,
    high: i64,
    levels: u64,
}

impl Group {
    fn merge(self, other: Group) -> Group {
        Group {
            first_ns: self.first_ns.min(other.first_ns),
            low: self.low.min(other.low),
            high: self.high.max(other.high),
            levels: self.levels + other.levels,
        }
    }
}

struct PoolTrack {
    groups: Vec<Group>,
    /// Levels per group: doubles each time the groups are merged pairwise,
    /// so every group stands for the same number of levels.
    group_size: u64,
    peak: Option<(MemoryLevel, Option<(PathId, u32)>)>,
}

impl Default for PoolTrack {
    fn default() -> Self {
        PoolTrack { groups: Vec::new(), group_size: 1, peak: None }
    }
}

impl PoolTrack {
    fn level(&mut self, l: &MemoryLevel) {
        if l.start_ns == l.end_ns {
            let new = Group { first_ns: l.start_ns, low: l.bytes, high: l.bytes, levels: 1 };
            match self.groups.last_mut() {
                Some(last) if last.levels < self.group_size => *last = last.merge(new),
                _ => self.groups.push(new),
            }
            // Each group draws as up to two points.
            if self.groups.len() >= MAX_POINTS / 2 {
                self.groups = self
                    .groups
                    .chunks(2)
                    .map(|pair| pair.iter().copied().reduce(Group::merge).expect("chunks are not empty"))
                    .collect();
                self.group_size *= 2;
            }
        }
        if self.peak.as_ref().is_none_or(|(p, _)| l.bytes > p.bytes) {
            self.peak = Some((*l, None));
        }
    }

    fn stage_call(&mut self, path: PathId, depth: u32, start_ns: u64, end_ns: u64) {
        if let Some((p, holder)) = &mut self.peak {
            let covers = start_ns <= p.start_ns && p.end_ns <= end_ns;
            if covers && holder.is_none_or(|(_, d)| depth > d) {
                *holder = Some((path, depth));
            }
        }
    }
}

/// Follows every allocator's levels through a profile.
#[derive(Default)]
pub(crate) struct MemoryTracker {
    pools: BTreeMap<MemoryPool, PoolTrack>,
}

impl MemoryTracker {
    fn pool(&mut self, pool: MemoryPool) -> &mut PoolTrack {
        self.pools.entry(pool).or_default()
    }

    /// Takes an allocator level.
    pub(crate) fn level(&mut self, l: &MemoryLevel) {
        self.pool(l.pool).level(l);
    }

    /// A closed span: its own allocator levels (stageprof's stages of the
    /// driving thread, and GPU memory allocated through stageprof), then
    /// whether it covers a pool's peak.
    pub(crate) fn span(&mut self, span: &Span) {
        let deltas = [(MemoryPool::Host, span.metrics.process_mem), (MemoryPool::Gpu, span.metrics.gpu_mem)];
        for (pool, d) in deltas {
            let Some((d, end)) = d.and_then(|d| Some((d, d.end_bytes?))) else { continue };
            // Saturating: the words come from a file, which may be damaged.
            let start = end.saturating_sub(d.net_bytes);
            let at = |start_ns, end_ns, bytes| MemoryLevel { pool, start_ns, end_ns, bytes };
            let track = self.pool(pool);
            track.level(&at(span.start_ns, span.start_ns, start));
            track.level(&at(span.end_ns, span.end_ns, end));
            track.level(&at(span.start_ns, span.end_ns, start.saturating_add_unsigned(d.peak_bytes)));
        }
        if let (SpanKind::Stage, Some(path)) = (span.kind, span.path) {
            for track in self.pools.values_mut() {
                track.stage_call(path, span.depth, span.start_ns, span.end_ns);
            }
        }
    }

    /// The timelines, with peak holders as indexes of `order` (the summary's stage order).
    pub(crate) fn timelines(&self, order: &[PathId]) -> Vec<MemoryTimeline> {
        self.pools
            .iter()
            .filter_map(|(pool, track)| {
                let (peak, holder) = track.peak.as_ref()?;
                let mut groups = track.groups.clone();
                groups.sort_by_key(|g| g.first_ns);
                let points = groups
                    .iter()
                    .flat_map(|g| {
                        let high = (g.high != g.low).then_some((g.first_ns, g.high));
                        std::iter::once((g.first_ns, g.low)).chain(high)
                    })
                    .collect();
                Some(MemoryTimeline {
                    pool: *pool,
                    points,
                    peak: MemoryPeak {
                        bytes: peak.bytes,
                        start_ns: peak.start_ns,
                        end_ns: peak.end_ns,
                        stage: holder.and_then(|(path, _)| order.iter().position(|&p| p == path)),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_model::{MemDelta, SpanFlags, StageMetrics};

    fn call(path: u32, depth: u32, start_ns: u64, end_ns: u64, process: Option<MemDelta>) -> Span {
        Span {
            thread: 1,
            kind: SpanKind::Stage,
            name: path,
            path: Some(PathId(path)),
            depth,
            start_ns,
            end_ns,
            self_ns: 0,
            frame: None,
            metrics: StageMetrics { process_mem: process, ..StageMetrics::default() },
            flags: SpanFlags::default(),
        }
    }

    #[test]
    fn the_innermost_call_covering_a_sampled_peak_holds_it() {
        let mut t = MemoryTracker::default();
        for (ts, bytes) in [(0, 10), (15, 500), (40, 30)] {
            t.level(&MemoryLevel { pool: MemoryPool::Gpu, start_ns: ts, end_ns: ts, bytes });
        }
        // Spans end inner first: inner (10..20) covers the peak at 15, its parent too, a sibling not.
        t.span(&call(1, 1, 10, 20, None));
        t.span(&call(2, 1, 20, 30, None));
        t.span(&call(0, 0, 0, 50, None));
        let got = t.timelines(&[PathId(0), PathId(1), PathId(2)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].points, vec![(0, 10), (15, 500), (40, 30)]);
        assert_eq!(got[0].peak, MemoryPeak { bytes: 500, start_ns: 15, end_ns: 15, stage: Some(1) });
    }

    #[test]
    fn a_call_peak_above_its_nested_calls_belongs_to_the_call() {
        let mut t = MemoryTracker::default();
        let heap = |peak_bytes, net_bytes, end| Some(MemDelta { peak_bytes, net_bytes, end_bytes: Some(end) });
        // The inner call peaks at 100 + 50; the outer, started at 100, peaks at 100 + 80 outside it.
        t.span(&call(1, 1, 10, 20, heap(50, 0, 100)));
        t.span(&call(0, 0, 0, 50, heap(80, 20, 120)));
        let got = t.timelines(&[PathId(0), PathId(1)]);
        assert_eq!(got[0].pool, MemoryPool::Host);
        assert_eq!(got[0].points, vec![(0, 100), (10, 100), (20, 100), (50, 120)]);
        assert_eq!(got[0].peak, MemoryPeak { bytes: 180, start_ns: 0, end_ns: 50, stage: Some(0) });
        // With the same peaks the other way round, the inner call holds it.
        let mut t = MemoryTracker::default();
        t.span(&call(1, 1, 10, 20, heap(80, 0, 100)));
        t.span(&call(0, 0, 0, 50, heap(80, 20, 120)));
        assert_eq!(t.timelines(&[PathId(0), PathId(1)])[0].peak.stage, Some(1));
    }

    #[test]
    fn long_series_stay_bounded_and_keep_their_peak() {
        let mut t = MemoryTracker::default();
        let n = 10 * MAX_POINTS as u64;
        for ts in 0..n {
            let bytes = if ts == 12_345 { 1 << 40 } else { (ts % 7) as i64 };
            t.level(&MemoryLevel { pool: MemoryPool::Host, start_ns: ts, end_ns: ts, bytes });
        }
        let got = &t.timelines(&[])[0];
        assert!(got.points.len() <= MAX_POINTS && got.points.len() >= MAX_POINTS / 4, "{}", got.points.len());
        assert!(got.points.windows(2).all(|w| w[0].0 <= w[1].0));
        // Groups stand for 32 levels each here (40,960 levels in at most 2,048 groups):
        // the spike's group shows it at the group's first time, and the troughs stay.
        assert!(got.points.contains(&(12_345 / 32 * 32, 1 << 40)), "the spike survives grouping");
        assert_eq!(got.points.iter().filter(|&&(_, b)| b == 0).count(), got.points.len() / 2);
        assert_eq!(got.peak.stage, None);
    }
}
