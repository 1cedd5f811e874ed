//! What went wrong while a profile was recorded or read, as values: each
//! warning says what happened and how often, and where there is one, what
//! the user can change so it does not happen again (as hyperfine's warnings
//! name the option that fixes them).

use std::fmt;

/// Why a trace event was left out of every figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implausible {
    /// `ts` (or a present `dur`) is not a finite number.
    NoTime,
    /// `dur` below zero.
    NegativeDuration,
    /// Starts or ends more than a day from the trace's median time.
    FarFromTrace,
}

impl Implausible {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub const ALL: [Implausible; 3] = [Implausible::NoTime, Implausible::NegativeDuration, Implausible::FarFromTrace];

    fn describe(self) -> &'static str {
        match self {
            Implausible::NoTime => "had no usable timestamp or duration",
            Implausible::NegativeDuration => "had a negative duration",
            Implausible::FarFromTrace => "lay more than a day from the trace's median time",
        }
    }
}

/// A problem met while recording or reading a profile.
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// The input was damaged or cut short at some point; what came before it is reported.
    ReadStopped {
        /// What was wrong.
        problem: String,
        /// Events read before it, where counted.
        events_before: Option<u64>,
    },
    /// A native names chunk named ids far past those known (corruption).
    CorruptNames {
        /// The chunk ends before this byte.
        before_byte: u64,
        /// The id it claimed to start at.
        first_id: u32,
    },
    /// A native record could not be decoded.
    BadRecord {
        /// The chunk ends at this byte.
        chunk_end_byte: u64,
        /// The word of the chunk where decoding failed.
        word: usize,
        /// What was wrong with it.
        problem: String,
    },
    /// Stage ends with no begin (a native file).
    UnmatchedStageEnds {
        /// How many.
        count: u64,
    },
    /// Event names with unescaped quotes, read as if escaped.
    RepairedNames {
        /// How many.
        count: u64,
    },
    /// Events the scanner could not read and stepped over.
    MalformedEvents {
        /// How many.
        count: u64,
    },
    /// `E` events with no `B` to close.
    UnmatchedEnds {
        /// How many.
        count: u64,
    },
    /// `B` events never closed, closed at the end of the trace.
    UnclosedBegins {
        /// How many.
        count: u64,
    },
    /// Stages that outlived the stage around them, cut to its end.
    ClippedStages {
        /// How many.
        count: u64,
    },
    /// Correlation ids carried by more than one launch.
    RepeatedCorrelationIds {
        /// How many.
        count: u64,
    },
    /// GPU work at the trace's start launched before the trace began.
    LaunchedBeforeTrace {
        /// How many.
        count: u64,
    },
    /// GPU work without a correlation id.
    NoCorrelationId {
        /// How many.
        count: u64,
    },
    /// GPU work whose correlation id matches no launch.
    NoLaunch {
        /// How many.
        count: u64,
    },
    /// GPU work launched outside every stage and frame.
    OutsideStages {
        /// How many.
        count: u64,
        /// Their busy time, where known (traces).
        busy_ns: Option<u64>,
    },
    /// Events left out because their times cannot be true; the first is named.
    Implausible {
        /// How many.
        count: u64,
        /// Why they were left out.
        reason: Implausible,
        /// The first one's category.
        category: String,
        /// The first one's name.
        name: String,
        /// Where the first one starts in the (decompressed) file.
        byte_offset: u64,
    },
    /// Events of another accelerator whose layout stageprof does not know.
    UnreadDeviceEvents {
        /// How many.
        count: u64,
        /// Their category.
        category: String,
    },
    /// Calls that ended on another CUDA stream than they began on: timed
    /// from their begin to the later of their end on either stream.
    StreamChanged {
        /// The stage (its path), of the first such call.
        stage: String,
        /// How many calls, of any stage.
        count: u64,
    },
    /// Items sent into a queue and never received: the queue was dropped,
    /// or the run ended, with them in it.
    QueueItemsLeft {
        /// The queue's name.
        queue: String,
        /// How many items.
        count: u64,
    },
    /// Queue operations that reached the reader after newer ones had been
    /// paired: a thread's records came more than the reader holds back (a
    /// collector pass; 250 ms in profiles without passes; 65,536
    /// operations) after another's, so receives around them may be paired
    /// with the wrong sends.
    QueueOperationsLate {
        /// How many.
        count: u64,
    },
    /// Several queues made under one name: their figures are merged, and
    /// receives are paired with sends across them (first in, first out).
    QueueNameReused {
        /// The name.
        queue: String,
        /// How many queues.
        count: u64,
    },
    /// GPU results that no join took: GPU activities (kernels) recorded
    /// while the run was summed up in memory (the fallback when the native
    /// file cannot be written joins event times and allocator levels only),
    /// or records of a file whose meta does not say it has GPU records.
    GpuNotJoined {
        /// How many records.
        count: u64,
    },
    /// Calls summed up while recording before their GPU results came: the
    /// GPU fell so far behind that more calls waited than the recorder holds.
    GpuResultsLate {
        /// How many calls.
        calls: u64,
    },
    /// The profile is made of parts of a run whose raw events were bounded
    /// on disk (`max_disk_mb`): its figures cover those parts only.
    BoundedParts {
        /// The parts' numbers, from 0, in the order read.
        parts: Vec<u64>,
    },
    /// An output of the recorder could not be written.
    OutputFailed {
        /// The output and what went wrong.
        problem: String,
    },
}

impl Warning {
    /// How many events or records it concerns (1 for a single failure).
    pub fn count(&self) -> u64 {
        match self {
            Warning::ReadStopped { .. }
            | Warning::CorruptNames { .. }
            | Warning::BadRecord { .. }
            | Warning::OutputFailed { .. }
            | Warning::BoundedParts { .. } => 1,
            Warning::UnmatchedStageEnds { count }
            | Warning::RepairedNames { count }
            | Warning::MalformedEvents { count }
            | Warning::UnmatchedEnds { count }
            | Warning::UnclosedBegins { count }
            | Warning::ClippedStages { count }
            | Warning::RepeatedCorrelationIds { count }
            | Warning::LaunchedBeforeTrace { count }
            | Warning::NoCorrelationId { count }
            | Warning::NoLaunch { count }
            | Warning::OutsideStages { count, .. }
            | Warning::Implausible { count, .. }
            | Warning::UnreadDeviceEvents { count, .. }
            | Warning::StreamChanged { count, .. }
            | Warning::QueueItemsLeft { count, .. }
            | Warning::QueueNameReused { count, .. }
            | Warning::QueueOperationsLate { count }
            | Warning::GpuNotJoined { count } => *count,
            Warning::GpuResultsLate { calls } => *calls,
        }
    }

    /// What the user can change so that it does not happen again, where anything can.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Warning::OutsideStages { busy_ns: None, .. } => {
                Some("open a stage (or a frame) around the code that launches that work")
            }
            Warning::OutsideStages { busy_ns: Some(_), .. } => Some(
                "wrap the code that launches that work in torch.profiler.record_function, or record it with stageprof",
            ),
            Warning::LaunchedBeforeTrace { .. } => {
                Some("give torch.profiler a schedule with warmup=1 so that tracing starts with the GPU caught up")
            }
            Warning::RepeatedCorrelationIds { .. } => Some("write one profiling session to each trace file"),
            Warning::QueueNameReused { .. } => Some("give each queue a name of its own"),
            Warning::GpuNotJoined { .. } => {
                Some("give the profiler an output directory it can write: kernels are joined to their stages from the native file")
            }
            Warning::StreamChanged { .. } => {
                Some("switch streams outside the stage, or open a stage inside the `with torch.cuda.stream(...)` block")
            }
            Warning::UnclosedBegins { .. } | Warning::UnmatchedStageEnds { .. } => {
                Some("end every stage on the thread that began it, before the profiler stops")
            }
            _ => None,
        }
    }
}

impl fmt::Display for Warning {
    /// The cause in words (as JSON's `warnings` lists it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ReadStopped { problem, events_before: Some(n) } => {
                write!(f, "{problem}; reporting the {n} events before it")
            }
            Warning::ReadStopped { problem, events_before: None } => write!(f, "{problem}; reporting what came before"),
            Warning::CorruptNames { before_byte, first_id } => {
                write!(f, "corrupt names chunk before byte {before_byte}: first id {first_id}")
            }
            Warning::BadRecord { chunk_end_byte, word, problem } => {
                write!(f, "bad record in chunk ending at byte {chunk_end_byte}, word {word}: {problem}")
            }
            Warning::UnmatchedStageEnds { count } => write!(f, "{count} stage ends had no matching begin"),
            Warning::RepairedNames { count } => {
                write!(f, "{count} event names had unescaped quotes and were read as if escaped")
            }
            Warning::MalformedEvents { count } => write!(f, "{count} malformed events were skipped"),
            Warning::UnmatchedEnds { count } => write!(f, "{count} E events had no B to close"),
            Warning::UnclosedBegins { count } => {
                write!(f, "{count} B events were never closed (closed at the end of the trace)")
            }
            Warning::ClippedStages { count } => {
                write!(f, "{count} stages overlapped the end of the stage around them and were cut to it")
            }
            Warning::RepeatedCorrelationIds { count } => write!(
                f,
                "{count} correlation ids were carried by more than one launch (a profiler restarted within the trace?); each GPU activity was joined to the launch with its id that most closely precedes it"
            ),
            Warning::LaunchedBeforeTrace { count } => write!(
                f,
                "{count} GPU activities at the start were launched before the trace began (the CPU ran ahead of the GPU); they belong to no stage"
            ),
            Warning::NoCorrelationId { count } => write!(
                f,
                "{count} GPU activities carry no correlation id: they count in the device's busy time but belong to no stage"
            ),
            Warning::NoLaunch { count } => {
                write!(f, "{count} GPU activities had no launch with the same correlation id")
            }
            Warning::OutsideStages { count, busy_ns: None } => {
                write!(f, "{count} GPU activities were launched outside every stage")
            }
            Warning::OutsideStages { count, busy_ns: Some(ns) } => write!(
                f,
                "{count} GPU activities ({:.3} ms) were launched outside any stage or frame (the `(no stage)` lines)",
                *ns as f64 / 1e6
            ),
            Warning::Implausible { count, reason, category, name, byte_offset } => write!(
                f,
                "{count} events {} and were left out of every figure (first: category {category:?}, name {:?}, at byte {byte_offset})",
                reason.describe(),
                shorten_for_warning(name)
            ),
            Warning::UnreadDeviceEvents { count, category } => write!(
                f,
                "{count} events of category {category:?} (another accelerator's) are not read: stageprof does not know their layout, so that device's work is missing from the figures"
            ),
            Warning::StreamChanged { stage, count } => write!(
                f,
                "{count} stage calls ended on another CUDA stream than they began on (first: {}); their GPU time runs from the begin to the later of the ends on both streams",
                shorten_for_warning(stage)
            ),
            Warning::QueueItemsLeft { queue, count } => write!(
                f,
                "{count} items sent into queue {} were never received (it was dropped, or the run ended, with them in it)",
                shorten_for_warning(queue)
            ),
            Warning::QueueNameReused { queue, count } => write!(
                f,
                "{count} queues were made under the name {}: their figures are merged, and items' residences \
                 and ages are paired across them",
                shorten_for_warning(queue)
            ),
            Warning::QueueOperationsLate { count } => write!(
                f,
                "{count} queue operations reached the reader after newer ones had been paired: one thread's records \
                 came more than a collector pass (250 ms in profiles written before passes) or 65,536 operations \
                 after another's, the recording held up; items' residences and ages around them may be paired with \
                 the wrong sends"
            ),
            Warning::GpuNotJoined { count } => write!(
                f,
                "{count} GPU results (event times, kernels, copies, allocator levels) were not joined to their stages: the figures have no GPU time or GPU memory"
            ),
            Warning::GpuResultsLate { calls } => write!(
                f,
                "{calls} calls were summed up before their GPU results came (the GPU fell more than a million calls behind): they have no GPU time or GPU memory"
            ),
            Warning::BoundedParts { parts } => {
                let list: Vec<String> = parts.iter().map(u64::to_string).collect();
                let which = if parts.len() == 1 { "part" } else { "parts" };
                write!(
                    f,
                    "these figures cover {which} {} of a run whose raw events were bounded on disk (max_disk_mb); the run's own summary.json covers all of it",
                    list.join(", ")
                )
            }
            Warning::OutputFailed { problem } => f.write_str(problem),
        }
    }
}

/// A name cut for a one-line warning (names from traces can be megabytes).
fn shorten_for_warning(name: &str) -> String {
    const MAX: usize = 80;
    match name.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &name[..cut]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_count_and_name_their_fix() {
        let w = Warning::OutsideStages { count: 3, busy_ns: Some(2_500_000) };
        assert_eq!(w.count(), 3);
        assert_eq!(
            w.to_string(),
            "3 GPU activities (2.500 ms) were launched outside any stage or frame (the `(no stage)` lines)"
        );
        assert!(w.fix().unwrap().contains("record_function"));
        assert_eq!(Warning::MalformedEvents { count: 2 }.fix(), None);
        let long = Warning::Implausible {
            count: 1,
            reason: Implausible::NegativeDuration,
            category: "cpu_op".into(),
            name: "x".repeat(100),
            byte_offset: 7,
        };
        assert!(long.to_string().contains(&format!("name \"{}...\"", "x".repeat(80))));
    }
}
