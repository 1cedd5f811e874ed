//! One pass over a profile: its summary and, if asked, its Chrome trace.
//! The recorder's `finish()` and `stageprof report` both call this.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::Path;

use stageprof_analysis::{Aggregator, Summary};
use stageprof_model::ingest::native_input::read_native_parts;
use stageprof_model::ingest::read_native;
use stageprof_model::native::NativeError;
use stageprof_model::RunInfo;
use stageprof_model::{Catalog, ProfileSink};

use crate::chrome::ChromeTraceWriter;

/// Why a profile could not be reported: the reader's error `E`, or the Chrome trace's.
#[derive(Debug)]
pub enum ReportError<E> {
    /// The profile could not be read.
    Read(E),
    /// Writing the Chrome trace failed (the summary was still computed).
    Chrome(io::Error, Box<Summary>),
}

impl<E: std::fmt::Display> std::fmt::Display for ReportError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Read(e) => write!(f, "{e}"),
            ReportError::Chrome(e, _) => write!(f, "writing the Chrome trace: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReportError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::Read(e) => Some(e),
            ReportError::Chrome(e, _) => Some(e),
        }
    }
}

/// Reads a profile once with `read`, summarizing it with the top `top`
/// bottlenecks and streaming it to `chrome` as a Chrome trace.
pub fn report_with<W: Write, E>(
    read: impl FnOnce(&mut dyn ProfileSink) -> Result<(Catalog, RunInfo), E>,
    top: usize,
    chrome: Option<W>,
) -> Result<Summary, ReportError<E>> {
    let mut sinks = (Aggregator::default(), chrome.map(|out| ChromeTraceWriter::new(out, 1)));
    let (catalog, run) = read(&mut sinks).map_err(ReportError::Read)?;
    let (aggregator, chrome) = sinks;
    let label = format!("{}: pid {} on {}", run.source, run.pid, run.host.hostname);
    let summary = aggregator.summary(&catalog, run, top);
    if let Some(writer) = chrome {
        if let Err(e) = writer.finish(&catalog, &label) {
            return Err(ReportError::Chrome(e, Box::new(summary)));
        }
    }
    Ok(summary)
}

/// The Chrome trace of a bounded profile's parts (`max_disk_mb`), read in
/// order as one profile: the raw events they kept.
pub fn chrome_of_parts<W: Write>(parts: &[impl AsRef<Path>], out: W) -> io::Result<()> {
    let mut chrome = ChromeTraceWriter::new(out, 1);
    let inputs = parts.iter().map(|p| File::open(p).map(BufReader::new)).collect::<io::Result<Vec<_>>>()?;
    let p = read_native_parts(inputs, &mut chrome).map_err(|e| io::Error::other(format!("the kept parts: {e}")))?;
    let label = format!("{}: pid {} on {}", p.run.source, p.run.pid, p.run.host.hostname);
    chrome.finish(&p.catalog, &label).map(drop)
}

/// [`report_with`] for a native stageprof profile.
pub fn report_native<W: Write>(
    input: impl Read + Seek,
    top: usize,
    chrome: Option<W>,
) -> Result<Summary, ReportError<NativeError>> {
    report_with(|sink| read_native(input, sink).map(|p| (p.catalog, p.run)), top, chrome)
}
