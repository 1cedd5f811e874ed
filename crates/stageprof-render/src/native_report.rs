//! One pass over a native profile: its summary and, if asked, its Chrome
//! trace. The recorder's `finish()` and `stageprof report` both call this.

use std::io::{self, Read, Write};

use stageprof_analysis::{read_native, Aggregator, Summary};
use stageprof_model::native::NativeError;

use crate::chrome::ChromeTraceWriter;

/// Why a native profile could not be reported.
#[derive(Debug)]
pub enum ReportError {
    Read(NativeError),
    /// Writing the Chrome trace failed (the summary was still computed).
    Chrome(io::Error, Box<Summary>),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Read(e) => write!(f, "{e}"),
            ReportError::Chrome(e, _) => write!(f, "writing the Chrome trace: {e}"),
        }
    }
}

impl std::error::Error for ReportError {}

/// Reads a native profile once, summarizing it with the top `top`
/// bottlenecks and streaming it to `chrome` as a Chrome trace.
pub fn report_native<W: Write>(input: impl Read, top: usize, chrome: Option<W>) -> Result<Summary, ReportError> {
    let mut sinks = (Aggregator::default(), chrome.map(|out| ChromeTraceWriter::new(out, 1)));
    let profile = read_native(input, &mut sinks).map_err(ReportError::Read)?;
    let (aggregator, chrome) = sinks;
    let label = format!("stageprof: pid {} on {}", profile.run.pid, profile.run.host.hostname);
    let summary = aggregator.summary(&profile.catalog, profile.run, top);
    if let Some(writer) = chrome {
        if let Err(e) = writer.finish(&profile.catalog, &label) {
            return Err(ReportError::Chrome(e, Box::new(summary)));
        }
    }
    Ok(summary)
}
