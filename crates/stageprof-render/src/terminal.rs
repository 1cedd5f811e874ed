//! Tables on a terminal, in one style for every view: they fit the width
//! they are printed to, and are coloured only where colour is wanted.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use stageprof_analysis::{StageFigure, STAGE_FIGURES};

/// Width of a table that is not printed to a terminal (a file, a pipe).
pub const WIDTH_OFF_TERMINAL: u16 = 100;

/// Which per-stage columns the stage table shows.
#[derive(Clone, Debug, Default)]
pub enum Columns {
    /// The main figures that were measured, as many as fit the width.
    #[default]
    Fit,
    /// Every figure that was measured, however wide.
    Wide,
    /// These figures, in this order.
    Only(Vec<&'static StageFigure>),
}

impl Columns {
    /// `--columns calls,p95,cpu`: figures named by their column label or
    /// summary.json key; an unknown name is an error listing the known ones.
    pub fn parse(list: &str) -> Result<Columns, String> {
        let chosen: Result<Vec<&'static StageFigure>, String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|name| {
                STAGE_FIGURES.iter().copied().find(|f| f.label.eq_ignore_ascii_case(name) || f.key == name).ok_or_else(
                    || {
                        let known: Vec<&str> = STAGE_FIGURES.iter().map(|f| f.label).collect();
                        format!("no column {name:?}; the columns are: {}", known.join(", "))
                    },
                )
            })
            .collect();
        match chosen? {
            c if c.is_empty() => Err(format!("{list:?}: name at least one column")),
            c => Ok(Columns::Only(c)),
        }
    }
}

/// How a table is drawn.
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// Colours and bold for the rows that stand out.
    pub color: bool,
    /// Width to fit; `None` for no limit.
    pub width: Option<u16>,
    /// The stage table's columns.
    pub columns: Columns,
}

impl TableOptions {
    /// Plain text of unlimited width with the default columns (files, tests).
    pub fn plain() -> TableOptions {
        TableOptions { color: false, width: None, columns: Columns::Fit }
    }

    /// For a table printed to a stream that is a terminal or not: its width
    /// (`$COLUMNS` first), else [`WIDTH_OFF_TERMINAL`]; colour only on a
    /// terminal and not when `NO_COLOR` is set (no-color.org).
    pub fn for_output(on_terminal: bool) -> TableOptions {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        TableOptions {
            color: on_terminal && !no_color,
            width: Some(terminal_width(on_terminal)),
            columns: Columns::Fit,
        }
    }
}

/// The width to fit: `$COLUMNS`, else the terminal's, else [`WIDTH_OFF_TERMINAL`].
pub fn terminal_width(on_terminal: bool) -> u16 {
    let asked = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()).filter(|&w| w >= 20);
    let measured =
        || on_terminal.then(|| crossterm::terminal::size().ok()).flatten().map(|(w, _)| w).filter(|&w| w > 0);
    asked.or_else(measured).unwrap_or(WIDTH_OFF_TERMINAL)
}

/// An empty table in stageprof's style, coloured and wrapped to the width as asked.
pub fn new_table(opts: &TableOptions) -> Table {
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

/// Characters a column of this content width takes in [`new_table`]'s style
/// (a space either side and the border after it).
pub(crate) fn column_chars(content: usize) -> usize {
    content + 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_by_label_or_key() {
        let Ok(Columns::Only(c)) = Columns::parse("calls, p95,gpu_busy_ns") else { panic!("parse failed") };
        let keys: Vec<&str> = c.iter().map(|f| f.key).collect();
        assert_eq!(keys, ["calls", "p95_ns", "gpu_busy_ns"]);
        let e = Columns::parse("calls,bogus").unwrap_err();
        assert!(e.contains("\"bogus\"") && e.contains("p95"), "{e}");
        assert!(Columns::parse(" , ").is_err());
    }

    #[test]
    fn width_and_colour_come_from_the_environment() {
        // One test owns COLUMNS and NO_COLOR, so parallel tests do not see each other's value.
        std::env::set_var("COLUMNS", "123");
        assert_eq!(terminal_width(false), 123);
        std::env::remove_var("NO_COLOR");
        let (on, off) = (TableOptions::for_output(true), TableOptions::for_output(false));
        assert_eq!((on.color, off.color, on.width, off.width), (true, false, Some(123), Some(123)));
        std::env::set_var("NO_COLOR", "1");
        assert!(!TableOptions::for_output(true).color);
        std::env::set_var("NO_COLOR", "");
        assert!(TableOptions::for_output(true).color, "an empty NO_COLOR does not count (no-color.org)");
        std::env::remove_var("NO_COLOR");
        std::env::set_var("COLUMNS", "nonsense");
        assert_eq!(terminal_width(false), WIDTH_OFF_TERMINAL);
        std::env::remove_var("COLUMNS");
        assert_eq!(terminal_width(false), WIDTH_OFF_TERMINAL);
    }
}
