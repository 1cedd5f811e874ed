//! The stage table's flags, shared by every command that prints one.

use clap::Args;
use stageprof_render::{Columns, TableOptions};

#[derive(Args, Clone, Debug, Default)]
pub(crate) struct TableArgs {
    /// Every measured column, however wide (by default the table fits the
    /// terminal, or COLUMNS, or 100 characters when not printed to a terminal).
    #[arg(long, conflicts_with = "columns")]
    wide: bool,
    /// The stage table's columns, by label or summary.json key: `calls,wall,p95,cpu`.
    #[arg(long, value_name = "A,B,...", value_parser = Columns::parse)]
    columns: Option<Columns>,
}

impl TableArgs {
    /// How to draw for a stream that is a terminal or not.
    pub(crate) fn options(&self, on_terminal: bool) -> TableOptions {
        let mut opts = TableOptions::for_output(on_terminal);
        if self.wide {
            opts.columns = Columns::Wide;
            opts.width = None;
        } else if let Some(columns) = &self.columns {
            opts.columns = columns.clone();
        }
        opts
    }
}
