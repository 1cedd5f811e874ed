//! Tables on a terminal, in one style for every view.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// How the table is drawn.
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    /// Colours and bold for the bottleneck rows.
    pub color: bool,
    /// Terminal width to wrap to; `None` for no wrapping.
    pub width: Option<u16>,
}

/// Width to wrap a table to on a terminal: `$COLUMNS`, else 160.
pub fn terminal_width() -> u16 {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(160)
}

/// An empty table in stageprof's style, coloured and wrapped as asked.
pub fn new_table(opts: TableOptions) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    if opts.color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    match opts.width {
        Some(w) => table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w),
        None => table.set_content_arrangement(ContentArrangement::Disabled),
    };
    table
}
