//! Several ranks side by side, in the terminal and in JSON.

use comfy_table::{Cell, CellAlignment};
use stageprof_analysis::{RankRow, Summary};

use crate::json::JsonWriter;
use crate::summary::{render_table, summary_json};
use crate::terminal::{new_table, TableOptions};
use crate::units::{duration, terminal_safe};

/// One rank: its label (file, rank number) and its summary.
pub struct RankInput<'a> {
    /// How the rank is named (its file).
    pub label: String,
    /// Its rank number.
    pub rank: u32,
    /// Its summary.
    pub summary: &'a Summary,
}

/// The time compared: GPU span where the profile has it, else wall time.
pub(crate) fn compared(row: &RankRow, r: usize) -> Option<u64> {
    row.per_rank[r].map(|f| f.gpu_span_ns.unwrap_or(f.wall_ns))
}

/// What [`compared`] measures across these rows, for a heading.
pub(crate) fn compared_label(rows: &[RankRow]) -> &'static str {
    let gpu = rows.iter().any(|r| r.per_rank.iter().flatten().any(|f| f.gpu_span_ns.is_some()));
    if gpu {
        "GPU span"
    } else {
        "wall time"
    }
}

/// A table with one column per rank; the slowest rank of each stage is marked.
pub fn render_ranks_table(ranks: &[RankInput<'_>], rows: &[RankRow], opts: &TableOptions) -> String {
    let mut table = new_table(opts);
    let mut header = vec!["stage".to_string()];
    header.extend(ranks.iter().map(|r| format!("rank {}", r.rank)));
    header.extend(["slowest".into(), "slowest / fastest".into()]);
    table.set_header(header);
    for row in rows {
        let name = row.path.iter().map(|p| terminal_safe(p)).collect::<Vec<_>>().join(" / ");
        let mut cells = vec![Cell::new(name)];
        for r in 0..ranks.len() {
            let text = match compared(row, r) {
                Some(t) if r == row.slowest && ranks.len() > 1 => format!("{} ◀", duration(t)),
                Some(t) => duration(t),
                None => "-".into(),
            };
            cells.push(Cell::new(text).set_alignment(CellAlignment::Right));
        }
        cells.push(Cell::new(format!("rank {}", ranks[row.slowest].rank)));
        cells.push(Cell::new(format!("{:.2}x", row.spread)).set_alignment(CellAlignment::Right));
        table.add_row(cells);
    }
    let what = compared_label(rows);
    format!("ranks side by side ({what} per stage, summed over calls; ◀ marks the slowest rank):\n{table}\n")
}

/// Every rank's summary, and the per-stage comparison.
pub fn ranks_json(ranks: &[RankInput<'_>], rows: &[RankRow]) -> String {
    let mut w = JsonWriter::new();
    w.begin_object().field("schema_version", stageprof_analysis::SCHEMA_VERSION).key("ranks").begin_array();
    for r in ranks {
        w.begin_object()
            .field_str("file", &r.label)
            .field("rank", r.rank)
            .key("summary")
            .raw(summary_json(r.summary))
            .end_object();
    }
    w.end_array().key("side_by_side").begin_array();
    for row in rows {
        w.begin_object().field_strs("path", row.path.iter().map(String::as_str));
        w.key("calls").begin_array();
        for f in &row.per_rank {
            w.opt(f.map(|f| f.calls));
        }
        w.end_array().key("wall_ns").begin_array();
        for f in &row.per_rank {
            w.opt(f.map(|f| f.wall_ns));
        }
        w.end_array().key("gpu_span_ns").begin_array();
        for f in &row.per_rank {
            w.opt(f.and_then(|f| f.gpu_span_ns));
        }
        w.end_array().key("gpu_busy_ns").begin_array();
        for f in &row.per_rank {
            w.opt(f.and_then(|f| f.gpu_busy_ns));
        }
        w.end_array().field("slowest_rank", ranks[row.slowest].rank).field_f64("spread", row.spread).end_object();
    }
    w.end_array().end_object();
    w.finish()
}

/// The HTML report of several ranks of one job: the first rank in full,
/// then the ranks side by side with the straggler flagged.
#[cfg(feature = "html")]
pub fn render_ranks_html(ranks: &[RankInput<'_>], rows: &[RankRow]) -> String {
    let Some(first) = ranks.first() else { return String::new() };
    crate::summary::html::page(first.summary, |page| ranks_section(page, ranks, rows))
}

#[cfg(feature = "html")]
fn ranks_section(page: &mut String, ranks: &[RankInput<'_>], rows: &[RankRow]) {
    use crate::svg::escape;
    use crate::units::display_path;
    use std::fmt::Write;

    let what = compared_label(rows);
    crate::summary::html::section(
        page,
        "ranks",
        "Ranks side by side",
        &format!("{what} per stage, summed over calls; the slowest rank of each stage is flagged."),
    );
    page.push_str("<table class=\"small\"><thead><tr><th>stage</th>");
    for r in ranks {
        let _ = write!(page, "<th title=\"{}\">rank {}</th>", escape(&r.label), r.rank);
    }
    page.push_str("<th>slowest / fastest</th></tr></thead><tbody>");
    for row in rows {
        let _ = write!(page, "<tr><td class=\"name\">{}</td>", escape(&display_path(&row.path, " / ")));
        for r in 0..row.per_rank.len() {
            let text = compared(row, r).map_or("-".into(), duration);
            let class = if r == row.slowest { " class=\"straggler\"" } else { "" };
            let _ = write!(page, "<td{class}>{text}</td>");
        }
        let _ = write!(page, "<td>{:.2}x</td></tr>", row.spread);
    }
    page.push_str("</tbody></table></section>");
}

/// The terminal report of one profile, or of several ranks of one job
/// (each rank's table, then the ranks side by side), as `stageprof report` prints it.
pub fn report_table(ranks: &[RankInput<'_>], rows: &[RankRow], opts: &TableOptions) -> String {
    match ranks {
        [one] => render_table(one.summary, opts),
        _ => {
            let mut text = String::new();
            for r in ranks {
                text.push_str(&format!("== rank {}: {} ==\n", r.rank, r.label));
                text.push_str(&render_table(r.summary, opts));
                text.push('\n');
            }
            text + &render_ranks_table(ranks, rows, opts)
        }
    }
}

/// The JSON of one profile (its summary) or of several ranks.
pub fn report_json(ranks: &[RankInput<'_>], rows: &[RankRow]) -> String {
    match ranks {
        [one] => summary_json(one.summary),
        _ => ranks_json(ranks, rows),
    }
}

/// The HTML page of one profile or of several ranks.
#[cfg(feature = "html")]
pub fn report_html(ranks: &[RankInput<'_>], rows: &[RankRow]) -> String {
    match ranks {
        [one] => crate::summary::render_html(one.summary),
        _ => render_ranks_html(ranks, rows),
    }
}
