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

use stageprof_analysis::Summary;

/// Where kernels were traced in some frames only, the sentence that says so (table and HTML).
fn kernel_sampling(s: &Summary) -> Option<String> {
    let traced = s.frames.gpu_traced.filter(|&t| t < s.frames.count)?;
    Some(format!(
        "Kernels were traced in {traced} of {} frames (kernel_every): each stage's GPU work figures are over its calls in those frames (gpu_traced_calls).",
        s.frames.count
    ))
}
