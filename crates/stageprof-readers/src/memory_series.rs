//! An allocator's total over time, from its events, and what a stage call
//! did to it: the peak above the value at its start, and the change.

use stageprof_model::{HostMem, MemDelta};

use crate::trace_tables::MemSample;

/// Allocator totals after each event, in time order (devices added together).
#[derive(Default)]
pub(crate) struct MemorySeries {
    ts: Vec<i64>,
    total: Vec<i64>,
    /// Cumulative bytes allocated and allocations, for per-call sums.
    alloc_bytes: Vec<u64>,
    allocs: Vec<u64>,
    before_first: i64,
}

impl MemorySeries {
    /// The series of samples of `device_type` (0 host, 1 CUDA).
    pub(crate) fn build(samples: &[MemSample], device_type: u8) -> MemorySeries {
        let mut picked: Vec<&MemSample> = samples.iter().filter(|s| s.device_type == device_type).collect();
        picked.sort_by_key(|s| s.ts);
        let mut s = MemorySeries::default();
        let mut per_device: Vec<(i64, i64)> = Vec::new();
        let (mut bytes, mut count) = (0u64, 0u64);
        for m in picked {
            match per_device.iter_mut().find(|(d, _)| *d == m.device) {
                Some(entry) => entry.1 = m.total,
                None => {
                    // Before its first event this device held its total less that event's bytes.
                    s.before_first = s.before_first.saturating_add(m.total.saturating_sub(m.bytes));
                    per_device.push((m.device, m.total));
                }
            }
            if m.bytes > 0 {
                bytes = bytes.saturating_add(m.bytes as u64);
                count += 1;
            }
            s.ts.push(m.ts);
            s.total.push(per_device.iter().fold(0i64, |sum, (_, t)| sum.saturating_add(*t)));
            s.alloc_bytes.push(bytes);
            s.allocs.push(count);
        }
        s
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Index of the last event at or before `t`.
    fn at(&self, t: i64) -> Option<usize> {
        self.ts.partition_point(|&x| x <= t).checked_sub(1)
    }

    fn total_at(&self, t: i64) -> i64 {
        self.at(t).map_or(self.before_first, |i| self.total[i])
    }

    /// Peak above the start and net change over `[start, end]`.
    pub(crate) fn delta(&self, start: i64, end: i64) -> Option<MemDelta> {
        if self.is_empty() {
            return None;
        }
        let base = self.total_at(start);
        let from = self.at(start).map_or(0, |i| i + 1);
        let to = self.at(end).map_or(0, |i| i + 1);
        let peak = self.total[from..to.max(from)].iter().copied().max().unwrap_or(base).max(base);
        Some(MemDelta {
            peak_bytes: peak.saturating_sub(base).max(0) as u64,
            net_bytes: self.total_at(end).saturating_sub(base),
            end_bytes: None,
        })
    }

    /// `(time, total)` after each event, in time order.
    pub(crate) fn levels(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ts.iter().copied().zip(self.total.iter().copied())
    }

    /// [`MemorySeries::delta`] with the allocations made in the call, for host memory.
    pub(crate) fn host(&self, start: i64, end: i64) -> Option<HostMem> {
        let d = self.delta(start, end)?;
        let sum = |v: &[u64]| {
            let before = self.at(start).map_or(0, |i| v[i]);
            let after = self.at(end).map_or(0, |i| v[i]);
            after - before
        };
        Some(HostMem {
            alloc_bytes: sum(&self.alloc_bytes),
            allocs: sum(&self.allocs),
            peak_bytes: d.peak_bytes,
            net_bytes: d.net_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ts: i64, device: i64, total: i64, bytes: i64) -> MemSample {
        MemSample { ts, device_type: 1, device, total, bytes }
    }

    #[test]
    fn peak_and_net_relative_to_the_start() {
        let s = MemorySeries::build(
            &[sample(10, 0, 1100, 100), sample(20, 0, 1600, 500), sample(30, 0, 1200, -400), sample(40, 0, 1000, -200)],
            1,
        );
        assert_eq!(s.delta(15, 35), Some(MemDelta { peak_bytes: 500, net_bytes: 100, end_bytes: None }));
        assert_eq!(s.delta(0, 5), Some(MemDelta { peak_bytes: 0, net_bytes: 0, end_bytes: None }));
        assert_eq!(s.delta(5, 50), Some(MemDelta { peak_bytes: 600, net_bytes: 0, end_bytes: None }));
        let h = MemorySeries::build(&[MemSample { device_type: 0, ..sample(10, -1, 50, 50) }], 0).host(0, 20).unwrap();
        assert_eq!((h.alloc_bytes, h.allocs, h.peak_bytes, h.net_bytes), (50, 1, 50, 50));
        assert!(MemorySeries::build(&[], 1).delta(0, 1).is_none());
    }

    #[test]
    fn devices_add_up() {
        let s = MemorySeries::build(&[sample(10, 0, 100, 100), sample(20, 1, 50, 50), sample(30, 0, 0, -100)], 1);
        assert_eq!(s.delta(0, 25), Some(MemDelta { peak_bytes: 150, net_bytes: 150, end_bytes: None }));
    }
}
