//! What is known of a run as a whole, whoever produced the profile.

use crate::{HostInfo, Warning};

/// Facts about the run as a whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    /// Where the profile came from (e.g. `stageprof`).
    pub source: String,
    /// Wall-clock start of the profile, Unix nanoseconds.
    pub start_unix_ns: u64,
    /// First event start to last event end.
    pub duration_ns: u64,
    /// The machine it ran on.
    pub host: HostInfo,
    /// Process id.
    pub pid: u32,
    /// Records the recorder had to drop because its buffers were full.
    pub dropped_records: u64,
    /// Whether thread CPU time was measured.
    pub cpu_time: bool,
    /// Whether host memory was measured (the tracking allocator was installed).
    pub memory_tracked: bool,
    /// Peak resident set size of the process, where known.
    pub peak_rss_bytes: Option<u64>,
    /// How recording ended: `finish`, a signal name, or `truncated`.
    pub end_reason: String,
    /// Problems met while recording or reading, for the reader of the report.
    pub warnings: Vec<Warning>,
    /// Rank of the process in a distributed job, where the trace says.
    pub rank: Option<u32>,
    /// The GPUs the profile names (PyTorch traces' `deviceProperties`).
    pub devices: Vec<String>,
    /// For a run whose raw events were bounded on disk (`max_disk_mb`):
    /// which of them were kept. Its statistics still cover the whole run.
    pub bounded: Option<KeptRaw>,
}

/// What a bounded run kept of its raw events: parts of its native file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeptRaw {
    /// The bound, in bytes.
    pub limit_bytes: u64,
    /// Parts written over the run.
    pub parts_written: u64,
    /// The parts still on disk, oldest first.
    pub kept: Vec<KeptPart>,
}

/// One part of a bounded run's native file: the raw events of a stretch of time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeptPart {
    /// Where it is.
    pub path: String,
    /// When its first and last records were taken, since the run's start.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// Its size.
    pub bytes: u64,
}
