//! What a session leaves behind at finish: the summary and Chrome trace
//! (one read of the native file), summary.json, report.html, and the table on stderr.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use stageprof_analysis::Summary;
use stageprof_render::table::terminal_width;
#[cfg(feature = "html")]
use stageprof_render::{render_html, RankInput};
use stageprof_render::{render_table, report_native, summary_json, ReportError, TableOptions};

use crate::collector::{Collected, Recorded};
use crate::config::{Config, Format};
use crate::notice::report;

/// What `finish` wrote and found.
#[derive(Debug, Default)]
pub struct Report {
    /// `None` when the profiler was off or already finished.
    pub summary: Option<Summary>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Outputs that failed, each naming its path.
    pub errors: Vec<String>,
}

/// Writes the summary, Chrome trace and table that `config` asks for.
/// `errors` are the collector's (already reported); new ones are reported here.
pub(crate) fn write(config: &Config, collected: Collected) -> Report {
    let Collected { recorded, mut errors } = collected;
    let fail = |errors: &mut Vec<String>, e: String| {
        report(&e);
        errors.push(e);
    };
    let dir = &config.output_dir;
    let mut files = Vec::new();
    let chrome_path = dir.join("trace.json");
    let mut summary = match recorded {
        Recorded::File(native) => {
            let chrome = match config.writes(Format::Chrome).then(|| File::create(&chrome_path)) {
                Some(Ok(f)) => Some(BufWriter::new(f)),
                Some(Err(e)) => {
                    fail(&mut errors, format!("cannot write {}: {e}", chrome_path.display()));
                    None
                }
                None => None,
            };
            let wants_chrome = chrome.is_some();
            let read = File::open(&native).map(|f| report_native(BufReader::new(f), config.top, chrome));
            let summary = match read {
                Ok(Ok(summary)) => {
                    if wants_chrome {
                        files.push(chrome_path);
                    }
                    summary
                }
                Ok(Err(ReportError::Chrome(e, summary))) => {
                    fail(&mut errors, format!("cannot write {}: {e}", chrome_path.display()));
                    *summary
                }
                Ok(Err(ReportError::Read(e))) => {
                    fail(&mut errors, format!("cannot read back {}: {e}", native.display()));
                    return Report { summary: None, files, errors };
                }
                Err(e) => {
                    fail(&mut errors, format!("cannot read back {}: {e}", native.display()));
                    return Report { summary: None, files, errors };
                }
            };
            if config.writes(Format::Native) {
                files.push(native);
            } else {
                let _ = std::fs::remove_file(native);
            }
            summary
        }
        Recorded::Live(live) => {
            if config.writes(Format::Chrome) {
                let e = format!(
                    "{} not written: the native profile it is made from could not be written",
                    chrome_path.display()
                );
                fail(&mut errors, e);
            }
            live.aggregator.summary(&live.catalog, live.run, config.top)
        }
    };
    summary.run.warnings.extend(errors.iter().cloned());
    if config.writes(Format::Summary) {
        let path = dir.join("summary.json");
        match std::fs::write(&path, summary_json(&summary)) {
            Ok(()) => files.push(path),
            Err(e) => fail(&mut errors, format!("cannot write {}: {e}", path.display())),
        }
    }
    #[cfg(feature = "html")]
    if config.writes(Format::Html) {
        let path = dir.join("report.html");
        let page = render_html(&[RankInput { label: String::new(), rank: 0, summary: &summary }], &[]);
        match std::fs::write(&path, page) {
            Ok(()) => files.push(path),
            Err(e) => fail(&mut errors, format!("cannot write {}: {e}", path.display())),
        }
    }
    if config.writes(Format::Table) {
        let stderr = std::io::stderr();
        let tty = stderr.is_terminal();
        let mut text = render_table(&summary, TableOptions { color: tty, width: tty.then(terminal_width) });
        for f in &files {
            text.push_str(&format!("wrote {}\n", f.display()));
        }
        let _ = stderr.lock().write_all(text.as_bytes());
    }
    Report { summary: Some(summary), files, errors }
}
