//! Readers of traces written by other tools, into stageprof's model.
//!
//! [`read_profile`] takes any file `stageprof report` accepts (native
//! stageprof profiles, Chrome trace JSON, PyTorch profiler traces, plain or
//! gzipped; told apart by content, not by name) and delivers its events to a
//! sink, through the same ingest the recorder's files go through. It returns
//! a [`Profile`] (names and what is known of the run, with any
//! [`stageprof_model::Warning`]s) or a [`ReadError`] that says what is wrong
//! and where.
//!
//! ```
//! use stageprof_analysis::Aggregator;
//! use stageprof_readers::{read_profile, ReadError};
//!
//! let mut aggregator = Aggregator::default();
//! let trace = br#"[{"ph": "X", "name": "step", "ts": 0, "dur": 4, "pid": 1, "tid": 1}]"#;
//! let profile = read_profile(&trace[..], &mut aggregator).unwrap();
//! assert!(profile.run.warnings.is_empty());
//! let not_a_trace = read_profile(&b"hello"[..], &mut aggregator);
//! assert!(matches!(not_a_trace, Err(ReadError::Trace(_))));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod backward;
mod call_tree;
mod chrome_trace;
mod files;
mod gpu_attribution;
mod json_scan;
mod plausibility;
mod trace_tables;

/// Why a trace had nothing readable; the streaming JSON scanner (for
/// measuring its speed, `examples/scan_speed.rs`).
pub use json_scan::{ScanError, Scanner};

pub use files::{bounded_part, label, profiles_in, read_opened, Listed};

use std::io::{BufRead, BufReader, Read, Seek};

use stageprof_model::ingest::read_native;
use stageprof_model::native::{NativeError, MAGIC};
use stageprof_model::RunInfo;
use stageprof_model::{Catalog, ProfileSink};

/// A profile that was read: its names and threads, and what is known of the run.
pub struct Profile {
    /// Names, paths and threads of the profile.
    pub catalog: Catalog,
    /// What is known of the run.
    pub run: RunInfo,
}

/// Why a file could not be read as a profile at all (damage that leaves
/// something to report is a warning in the profile's [`RunInfo`] instead).
#[derive(Debug)]
pub enum ReadError {
    /// Reading the bytes failed, or their gzip stream was damaged.
    Io(std::io::Error),
    /// A native stageprof file that could not be read.
    Native(NativeError),
    /// A Chrome or PyTorch trace with nothing readable.
    Trace(ScanError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Native(e) => write!(f, "{e}"),
            ReadError::Trace(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// Whether the file is JSON that holds no trace (see [`Listed::skipped_for`]).
    pub fn is_not_a_trace(&self) -> bool {
        matches!(self, ReadError::Trace(ScanError::NoEvents))
    }
}

/// Reads a profile of any supported format and hands its events to `sink`.
pub fn read_profile(input: impl Read, sink: &mut dyn ProfileSink) -> Result<Profile, ReadError> {
    read_any(Box::new(input), sink)
}

/// Reads a profile from a file (or other input that can seek), as
/// [`read_profile`] does, but a native profile as it streams by rather than
/// whole in memory (a day's profile is gigabytes).
pub fn read_seekable(mut input: impl BufRead + Seek, sink: &mut dyn ProfileSink) -> Result<Profile, ReadError> {
    if input.fill_buf().map_err(ReadError::Io)?.starts_with(MAGIC) {
        return read_native_profile(input, sink);
    }
    read_any(Box::new(input), sink)
}

fn read_native_profile(input: impl BufRead + Seek, sink: &mut dyn ProfileSink) -> Result<Profile, ReadError> {
    let p = read_native(input, sink).map_err(ReadError::Native)?;
    Ok(Profile { catalog: p.catalog, run: p.run })
}

fn read_any(input: Box<dyn Read + '_>, sink: &mut dyn ProfileSink) -> Result<Profile, ReadError> {
    // Small: enough to tell the format; the readers' own large reads then bypass it.
    let mut input = BufReader::with_capacity(8 << 10, input);
    let head = input.fill_buf().map_err(ReadError::Io)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // gzip: read what it holds (tensorboard_trace_handler writes .json.gz).
        return read_any(Box::new(flate2::read::MultiGzDecoder::new(input)), sink);
    }
    if head.starts_with(MAGIC) {
        // The native reader makes two passes when a profile holds GPU results
        // (files are read through `read_seekable`, without this copy).
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(ReadError::Io)?;
        return read_native_profile(std::io::Cursor::new(bytes), sink);
    }
    let p = chrome_trace::read_trace(input, sink).map_err(ReadError::Trace)?;
    Ok(Profile { catalog: p.catalog, run: p.run })
}
