//! Renderers: turn a [`stageprof_analysis::Summary`] or a stream of spans
//! into what people and other tools read. Every name from a user or a trace
//! is escaped for the format it is written into.

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
pub use native_report::{report_native, report_with, ReportError};
pub use ranks::{ranks_json, render_ranks_table, RankInput};
#[cfg(feature = "html")]
pub use summary::render_html;
pub use summary::{render_table, summary_json};
pub use terminal::{terminal_width, TableOptions};
