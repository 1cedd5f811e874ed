//! Renderers: turn a [`stageprof_analysis::Summary`] or a stream of spans
//! into what people and other tools read. Every name from a user or a trace
//! is escaped for the format it is written into.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod chrome;
pub mod diff;
#[cfg(feature = "html")]
pub mod html;
pub mod json;
pub mod native_report;
pub mod ranks;
pub mod summary_json;
#[cfg(feature = "html")]
pub mod svg;
pub mod table;
pub mod units;

pub use chrome::ChromeTraceWriter;
#[cfg(feature = "html")]
pub use diff::render_diff_html;
pub use diff::{diff_json, render_diff_table, DiffLabels};
#[cfg(feature = "html")]
pub use html::render_html;
pub use native_report::{report_native, report_with, ReportError};
pub use ranks::{ranks_json, render_ranks_table, RankInput};
pub use summary_json::summary_json;
pub use table::{render_table, TableOptions};
