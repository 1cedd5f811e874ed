//! Renderers: turn a [`stageprof_analysis::Summary`] or a stream of spans
//! into what people and other tools read. Every name from a user or a trace
//! is escaped for the format it is written into.
//!
//! Laid out by subject, each with its formats: [`summary`] (the terminal
//! table, the JSON summary, the HTML page), [`diff`], [`ranks`] and
//! [`history`]; [`ChromeTraceWriter`] is a sink that streams spans to a
//! Chrome trace, and [`report_with`] runs a reader into the summary and the
//! Chrome trace in one pass.
//!
//! ```
//! use stageprof_analysis::Aggregator;
//! use stageprof_render::{render_table, summary_json, TableOptions};
//!
//! let trace = br#"[{"ph": "X", "name": "load", "ts": 0, "dur": 30, "pid": 1, "tid": 1}]"#;
//! let mut aggregator = Aggregator::default();
//! let profile = stageprof_readers::read_profile(&trace[..], &mut aggregator).unwrap();
//! let summary = aggregator.summary(&profile.catalog, profile.run, 3);
//! let table = render_table(&summary, &TableOptions::plain());
//! assert!(table.contains("load"));
//! assert!(summary_json(&summary).contains(r#""wall_ns":30000"#));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod chrome;
pub mod diff;
pub mod history;
pub mod json;
pub mod native_report;
pub mod ranks;
pub mod summary;
#[cfg(feature = "html")]
pub mod svg;
pub mod terminal;
pub mod units;

pub use chrome::ChromeTraceWriter;
#[cfg(feature = "html")]
pub use diff::render_diff_html;
pub use diff::{diff_json, render_diff_table, DiffLabels};
pub use native_report::{chrome_of_parts, report_native, report_with, ReportError};
pub use ranks::{ranks_json, render_ranks_table, report_json, report_table, RankInput};
#[cfg(feature = "html")]
pub use ranks::{render_ranks_html, report_html};
#[cfg(feature = "html")]
pub use summary::render_html;
pub use summary::{render_table, summary_json};
pub use terminal::{terminal_width, Columns, TableOptions};
