//! The record layout of the recorder's thread buffers and of native files.
//!
//! A record is a run of `u64` words. The first word is a header: the record
//! kind in the low 4 bits, flags in the next 12, an id (stage name or counter
//! name) in the high 32. The recorder writes these words straight into its
//! buffers; the native file stores them verbatim, so a reader decodes exactly
//! what the hot path wrote.

use crate::event::HostMem;

/// Record kinds (low 4 bits of the header word).
pub mod kind {
    /// `[header, ts]`: a stage opens.
    pub const BEGIN_STAGE: u64 = 1;
    /// `[header, ts]`: a frame opens. Flag [`super::flag::SAMPLED`] says whether its stages are recorded.
    pub const BEGIN_FRAME: u64 = 2;
    /// `[header, ts, (cpu_ns), (alloc_bytes, allocs, mem_peak, mem_net)]`: the innermost open span closes.
    pub const END: u64 = 3;
    /// `[header, ts, value as f64 bits]`: a counter sample.
    pub const COUNTER: u64 = 4;
    /// `[header, peak_bytes, net_bytes, (end_bytes)]`: process-wide heap
    /// figures of the stage whose END follows on the same thread (format
    /// version 2; the heap's bytes at the end with [`super::flag::HAS_LEVEL`], version 3).
    pub const PROCESS_MEM: u64 = 5;
}

/// Header flags (bits 4..16 of the header word).
pub mod flag {
    /// END: the stage was left by a panic unwinding through it.
    pub const UNWOUND: u64 = 1 << 4;
    /// END: a thread CPU time word follows the timestamp.
    pub const HAS_CPU: u64 = 1 << 5;
    /// END: four memory words follow (alloc bytes, alloc count, peak, net).
    pub const HAS_MEM: u64 = 1 << 6;
    /// BEGIN_FRAME: the frame is sampled (its stages are recorded).
    pub const SAMPLED: u64 = 1 << 7;
    /// PROCESS_MEM: the heap's bytes at the stage's end follow.
    pub const HAS_LEVEL: u64 = 1 << 8;
}

const KIND_MASK: u64 = 0xf;
const FLAG_MASK: u64 = 0xfff0;

/// Words of a BEGIN record.
pub const BEGIN_WORDS: usize = 2;
/// Words of a COUNTER record.
pub const COUNTER_WORDS: usize = 3;
/// Most words the closing of a span can take: an END record and the
/// PROCESS_MEM record before it.
pub const MAX_END_WORDS: usize = 7 + PROCESS_WORDS;
/// Most words of a PROCESS_MEM record.
pub const PROCESS_WORDS: usize = 4;

/// Builds a header word.
#[inline(always)]
pub const fn header(kind: u64, flags: u64, id: u32) -> u64 {
    kind | flags | ((id as u64) << 32)
}

/// One decoded record; timestamps are still in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Record {
    Begin { name: u32, ticks: u64, frame: bool, sampled: bool },
    End { name: u32, ticks: u64, unwound: bool, cpu_ns: Option<u64>, mem: Option<HostMem> },
    Counter { name: u32, ticks: u64, value: f64 },
    ProcessMem { peak_bytes: u64, net_bytes: i64, end_bytes: Option<i64> },
}

/// A record that cannot be decoded: the word offset and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub word: usize,
    pub message: String,
}

/// Number of words an END record with these flags takes.
pub const fn end_words(flags: u64) -> usize {
    2 + if flags & flag::HAS_CPU != 0 { 1 } else { 0 } + if flags & flag::HAS_MEM != 0 { 4 } else { 0 }
}

/// Decodes a run of words into records, calling `f` for each one.
///
/// Stops at the first malformed record and reports where it is.
pub fn decode(words: &[u64], mut f: impl FnMut(Record)) -> Result<(), WireError> {
    let mut at = 0;
    while at < words.len() {
        let head = words[at];
        let kind_bits = head & KIND_MASK;
        let flags = head & FLAG_MASK;
        let id = (head >> 32) as u32;
        let len = match kind_bits {
            kind::BEGIN_STAGE | kind::BEGIN_FRAME => BEGIN_WORDS,
            kind::END => end_words(flags),
            kind::COUNTER => COUNTER_WORDS,
            kind::PROCESS_MEM if flags & flag::HAS_LEVEL != 0 => PROCESS_WORDS,
            kind::PROCESS_MEM => PROCESS_WORDS - 1,
            other => {
                return Err(WireError { word: at, message: format!("unknown record kind {other}") });
            }
        };
        let Some(rec) = words.get(at..at + len) else {
            return Err(WireError {
                word: at,
                message: format!("record needs {len} words, {} left", words.len() - at),
            });
        };
        f(match kind_bits {
            kind::BEGIN_STAGE | kind::BEGIN_FRAME => Record::Begin {
                name: id,
                ticks: rec[1],
                frame: kind_bits == kind::BEGIN_FRAME,
                sampled: flags & flag::SAMPLED != 0,
            },
            kind::END => {
                let mut rest = &rec[2..];
                let cpu_ns = (flags & flag::HAS_CPU != 0).then(|| {
                    let v = rest[0];
                    rest = &rest[1..];
                    v
                });
                let mem = (flags & flag::HAS_MEM != 0).then(|| HostMem {
                    alloc_bytes: rest[0],
                    allocs: rest[1],
                    peak_bytes: rest[2],
                    net_bytes: rest[3] as i64,
                });
                Record::End { name: id, ticks: rec[1], unwound: flags & flag::UNWOUND != 0, cpu_ns, mem }
            }
            kind::PROCESS_MEM => Record::ProcessMem {
                peak_bytes: rec[1],
                net_bytes: rec[2] as i64,
                end_bytes: rec.get(3).map(|&b| b as i64),
            },
            _ => Record::Counter { name: id, ticks: rec[1], value: f64::from_bits(rec[2]) },
        });
        at += len;
    }
    Ok(())
}

/// Converts the recorder's clock ticks to nanoseconds since the profile's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickScale {
    pub ticks_per_second: u64,
    pub start_ticks: u64,
}

impl TickScale {
    /// Nanoseconds from the start to `ticks`; ticks before the start read as 0.
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        let d = u128::from(ticks.saturating_sub(self.start_ticks));
        (d * 1_000_000_000 / u128::from(self.ticks_per_second.max(1))) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let words = [
            header(kind::BEGIN_FRAME, flag::SAMPLED, 9),
            100,
            header(kind::BEGIN_STAGE, 0, 7),
            110,
            header(kind::COUNTER, 0, 8),
            115,
            2.5f64.to_bits(),
            header(kind::END, flag::HAS_CPU | flag::HAS_MEM | flag::UNWOUND, 7),
            120,
            5,
            64,
            1,
            64,
            (-16i64) as u64,
            header(kind::PROCESS_MEM, 0, 9),
            4096,
            (-8i64) as u64,
            header(kind::PROCESS_MEM, flag::HAS_LEVEL, 9),
            4096,
            (-8i64) as u64,
            1 << 20,
            header(kind::END, 0, 9),
            130,
        ];
        let mut out = Vec::new();
        decode(&words, |r| out.push(r)).unwrap();
        assert_eq!(
            out,
            vec![
                Record::Begin { name: 9, ticks: 100, frame: true, sampled: true },
                Record::Begin { name: 7, ticks: 110, frame: false, sampled: false },
                Record::Counter { name: 8, ticks: 115, value: 2.5 },
                Record::End {
                    name: 7,
                    ticks: 120,
                    unwound: true,
                    cpu_ns: Some(5),
                    mem: Some(HostMem { alloc_bytes: 64, allocs: 1, peak_bytes: 64, net_bytes: -16 })
                },
                Record::ProcessMem { peak_bytes: 4096, net_bytes: -8, end_bytes: None },
                Record::ProcessMem { peak_bytes: 4096, net_bytes: -8, end_bytes: Some(1 << 20) },
                Record::End { name: 9, ticks: 130, unwound: false, cpu_ns: None, mem: None },
            ]
        );
    }

    #[test]
    fn scales_ticks_without_overflow() {
        let s = TickScale { ticks_per_second: 3_000_000_000, start_ticks: 1_000 };
        assert_eq!(s.ns(1_000 + 3_000), 1_000);
        assert_eq!(s.ns(10), 0);
        assert_eq!(s.ns(1_000 + 3_000_000_000 * 86_400), 86_400_000_000_000);
    }

    #[test]
    fn reports_truncated_and_unknown_records() {
        let err = decode(&[header(kind::END, flag::HAS_MEM, 1), 5, 1], |_| {}).unwrap_err();
        assert_eq!(err.word, 0);
        let err = decode(&[header(kind::BEGIN_STAGE, 0, 1), 5, 0xe], |_| {}).unwrap_err();
        assert_eq!(err, WireError { word: 2, message: "unknown record kind 14".into() });
    }
}
