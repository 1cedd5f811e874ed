//! Readers of traces written by other tools, into stageprof's model.
//!
//! [`read_profile`] takes any file `stageprof report` accepts (native
//! stageprof profiles, Chrome trace JSON, PyTorch profiler traces, plain or
//! gzipped; told apart by content, not by name) and delivers its events to a
//! sink, through the same analysis the recorder uses.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod backward;
mod call_tree;
mod chrome_trace;
mod gpu_attribution;
mod json_scan;
mod memory_series;
mod plausibility;
mod trace_tables;

/// The streaming JSON scanner, for measuring its speed (`examples/scan_speed.rs`).
pub use json_scan::Scanner;

use std::io::{BufRead, BufReader, Read};

use stageprof_model::ingest::read_native;
use stageprof_model::native::MAGIC;
use stageprof_model::RunInfo;
use stageprof_model::{Catalog, ProfileSink};

/// A profile that was read: its names and threads, and what is known of the run.
pub struct Profile {
    pub catalog: Catalog,
    pub run: RunInfo,
}

/// Reads a profile of any supported format and hands its events to `sink`.
pub fn read_profile(input: impl Read, sink: &mut dyn ProfileSink) -> Result<Profile, String> {
    read_any(Box::new(input), sink)
}

fn read_any(input: Box<dyn Read + '_>, sink: &mut dyn ProfileSink) -> Result<Profile, String> {
    // Small: enough to tell the format; the readers' own large reads then bypass it.
    let mut input = BufReader::with_capacity(8 << 10, input);
    let head = input.fill_buf().map_err(|e| e.to_string())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // gzip: read what it holds (tensorboard_trace_handler writes .json.gz).
        return read_any(Box::new(flate2::read::MultiGzDecoder::new(input)), sink);
    }
    if head.starts_with(MAGIC) {
        // The native reader makes two passes when a profile holds GPU results.
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        let p = read_native(std::io::Cursor::new(bytes), sink).map_err(|e| e.to_string())?;
        return Ok(Profile { catalog: p.catalog, run: p.run });
    }
    let p = chrome_trace::read_trace(input, sink).map_err(|e| e.to_string())?;
    Ok(Profile { catalog: p.catalog, run: p.run })
}
