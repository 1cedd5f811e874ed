//! The report of one profile, in each of its formats: the terminal table,
//! the JSON summary (docs/summary-schema.md) and the HTML page.

#[cfg(feature = "html")]
mod flame;
#[cfg(feature = "html")]
pub(crate) mod html;
mod json;
mod table;

#[cfg(feature = "html")]
pub use html::render_html;
pub use json::summary_json;
pub use table::render_table;
