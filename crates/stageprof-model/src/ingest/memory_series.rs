//! An allocator's level over time, from its own events (PyTorch's memory
//! events in a trace, or torch's caching-allocator trace in a native
//! profile), and what a call did to it: the peak above the level at its
//! start, the change, and the most the allocator held from the driver.

use crate::{HostMem, MemDelta};

/// One allocator event: its time and the levels right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemorySample {
    /// When, in the profile's time unit.
    pub ts: i64,
    /// The allocator's device (levels of several devices add up).
    pub device: i64,
    /// Bytes allocated on `device` after the event.
    pub total: i64,
    /// Bytes the event allocated (positive) or freed (negative).
    pub bytes: i64,
    /// Bytes the allocator held from the driver after the event, where known.
    pub reserved: Option<i64>,
}

/// Allocator totals after each event, in time order (devices added together).
#[derive(Default)]
pub struct MemorySeries {
    ts: Vec<i64>,
    total: Vec<i64>,
    /// Reserved bytes after each event; empty when no sample said.
    reserved: Vec<i64>,
    /// Cumulative bytes allocated and allocations, for per-call sums.
    alloc_bytes: Vec<u64>,
    allocs: Vec<u64>,
    before_first: i64,
    /// Each device's latest levels, for the next sample.
    device_totals: PerDevice,
    device_reserved: PerDevice,
}

/// Each device's latest value, added up.
#[derive(Default)]
struct PerDevice(Vec<(i64, i64)>);

impl PerDevice {
    /// Sets `device`'s value; returns whether the device is new.
    fn set(&mut self, device: i64, value: i64) -> bool {
        match self.0.iter_mut().find(|(d, _)| *d == device) {
            Some(entry) => {
                entry.1 = value;
                false
            }
            None => {
                self.0.push((device, value));
                true
            }
        }
    }

    fn sum(&self) -> i64 {
        self.0.iter().fold(0i64, |sum, (_, v)| sum.saturating_add(*v))
    }
}

impl MemorySeries {
    /// The series of `samples` (of one allocator kind, any order).
    pub fn build(samples: impl IntoIterator<Item = MemorySample>) -> MemorySeries {
        let mut picked: Vec<MemorySample> = samples.into_iter().collect();
        picked.sort_by_key(|s| s.ts);
        let mut s = MemorySeries::default();
        picked.into_iter().for_each(|m| s.push(m));
        s
    }

    /// Adds a sample no earlier than the last one (the caller keeps the order).
    pub fn push(&mut self, m: MemorySample) {
        debug_assert!(self.ts.last().is_none_or(|&last| last <= m.ts), "samples in time order");
        if self.device_totals.set(m.device, m.total) {
            // Before its first event this device held its total less that event's bytes.
            self.before_first = self.before_first.saturating_add(m.total.saturating_sub(m.bytes));
        }
        if let Some(r) = m.reserved {
            // Samples before the first that said read as holding nothing reserved.
            self.reserved.resize(self.ts.len(), 0);
            self.device_reserved.set(m.device, r);
        }
        let (bytes, count) = (self.alloc_bytes.last().copied().unwrap_or(0), self.allocs.last().copied().unwrap_or(0));
        let allocated = m.bytes > 0;
        self.ts.push(m.ts);
        self.total.push(self.device_totals.sum());
        if !self.reserved.is_empty() || m.reserved.is_some() {
            self.reserved.push(self.device_reserved.sum());
        }
        self.alloc_bytes.push(if allocated { bytes.saturating_add(m.bytes as u64) } else { bytes });
        self.allocs.push(count + u64::from(allocated));
    }

    /// The time of the last sample.
    pub fn last_ts(&self) -> Option<i64> {
        self.ts.last().copied()
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Forgets the samples before `t` but the last of them (the level at
    /// `t`): calls that start at `t` or later get the same figures.
    /// Returns how many were forgotten.
    pub fn forget_before(&mut self, t: i64) -> usize {
        let Some(keep_from) = self.ts.partition_point(|&x| x < t).checked_sub(1) else { return 0 };
        self.ts.drain(..keep_from);
        self.total.drain(..keep_from);
        self.reserved.drain(..keep_from.min(self.reserved.len()));
        self.alloc_bytes.drain(..keep_from);
        self.allocs.drain(..keep_from);
        keep_from
    }

    /// Whether the allocator had no events.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Index of the last event at or before `t`.
    fn at(&self, t: i64) -> Option<usize> {
        self.ts.partition_point(|&x| x <= t).checked_sub(1)
    }

    fn total_at(&self, t: i64) -> i64 {
        self.at(t).map_or(self.before_first, |i| self.total[i])
    }

    /// Indices of the events within `(start, end]`.
    fn within(&self, start: i64, end: i64) -> std::ops::Range<usize> {
        let from = self.at(start).map_or(0, |i| i + 1);
        let to = self.at(end).map_or(0, |i| i + 1);
        from..to.max(from)
    }

    /// Peak above the start and net change over `[start, end]`.
    pub fn delta(&self, start: i64, end: i64) -> Option<MemDelta> {
        if self.is_empty() {
            return None;
        }
        let base = self.total_at(start);
        let peak = self.total[self.within(start, end)].iter().copied().max().unwrap_or(base).max(base);
        Some(MemDelta {
            peak_bytes: peak.saturating_sub(base).max(0) as u64,
            net_bytes: self.total_at(end).saturating_sub(base),
            end_bytes: None,
        })
    }

    /// The most bytes the allocator held from the driver over `[start, end]`, where known.
    pub fn reserved_peak(&self, start: i64, end: i64) -> Option<u64> {
        if self.reserved.is_empty() {
            return None;
        }
        let at_start = self.at(start).map(|i| self.reserved[i]);
        let peak = self.reserved[self.within(start, end)].iter().copied().chain(at_start).max()?;
        Some(peak.max(0) as u64)
    }

    /// `(time, total)` after each event, in time order.
    pub fn levels(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ts.iter().copied().zip(self.total.iter().copied())
    }

    /// [`MemorySeries::delta`] with the allocations made in the call, for host memory.
    pub fn host(&self, start: i64, end: i64) -> Option<HostMem> {
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

    fn sample(ts: i64, device: i64, total: i64, bytes: i64) -> MemorySample {
        MemorySample { ts, device, total, bytes, reserved: None }
    }

    #[test]
    fn peak_and_net_relative_to_the_start() {
        let s = MemorySeries::build([
            sample(10, 0, 1100, 100),
            sample(20, 0, 1600, 500),
            sample(30, 0, 1200, -400),
            sample(40, 0, 1000, -200),
        ]);
        assert_eq!(s.delta(15, 35), Some(MemDelta { peak_bytes: 500, net_bytes: 100, end_bytes: None }));
        assert_eq!(s.delta(0, 5), Some(MemDelta { peak_bytes: 0, net_bytes: 0, end_bytes: None }));
        assert_eq!(s.delta(5, 50), Some(MemDelta { peak_bytes: 600, net_bytes: 0, end_bytes: None }));
        let h = MemorySeries::build([sample(10, -1, 50, 50)]).host(0, 20).unwrap();
        assert_eq!((h.alloc_bytes, h.allocs, h.peak_bytes, h.net_bytes), (50, 1, 50, 50));
        assert!(MemorySeries::build([]).delta(0, 1).is_none());
    }

    #[test]
    fn devices_add_up() {
        let s = MemorySeries::build([sample(10, 0, 100, 100), sample(20, 1, 50, 50), sample(30, 0, 0, -100)]);
        assert_eq!(s.delta(0, 25), Some(MemDelta { peak_bytes: 150, net_bytes: 150, end_bytes: None }));
    }

    #[test]
    fn reserved_peak_counts_the_level_at_the_start() {
        let r = |ts, reserved| MemorySample { reserved: Some(reserved), ..sample(ts, 0, 0, 0) };
        let s = MemorySeries::build([r(10, 4096), r(20, 8192), r(30, 2048)]);
        assert_eq!(s.reserved_peak(12, 18), Some(4096));
        assert_eq!(s.reserved_peak(12, 25), Some(8192));
        assert_eq!(s.reserved_peak(25, 40), Some(8192));
        assert_eq!(s.reserved_peak(31, 40), Some(2048));
        assert_eq!(s.reserved_peak(0, 5), None);
        assert_eq!(MemorySeries::build([sample(1, 0, 0, 0)]).reserved_peak(0, 5), None);
    }
}
