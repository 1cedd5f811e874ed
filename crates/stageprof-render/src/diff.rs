//! `stageprof diff` output: the same rows as a terminal table, JSON and an
//! HTML page, each row one measure of one stage with its verdict.

use std::fmt::Write;

use comfy_table::{Attribute, Cell, CellAlignment, Color};
use stageprof_analysis::diff::{Change, Diff, MemoryChange, Verdict, MIN_CALLS};

use crate::json::JsonWriter;
use crate::terminal::{new_table, TableOptions};
use crate::units::{duration, shorten, signed_bytes, terminal_safe, NAME_CHARS};

/// The two sides, as the user named them.
#[derive(Clone, Copy, Debug)]
pub struct DiffLabels<'a> {
    /// How the base run is named (its path).
    pub base: &'a str,
    /// How the new run is named.
    pub new: &'a str,
}

/// One line of the comparison, as text.
struct Row {
    stage: String,
    /// The whole path, for the HTML page's list of changes out of the tree.
    #[cfg_attr(not(feature = "html"), allow(dead_code))]
    path: String,
    depth: u32,
    /// For the HTML page's order, largest change first.
    #[cfg_attr(not(feature = "html"), allow(dead_code))]
    change_pct: f64,
    measure: &'static str,
    calls: String,
    base: String,
    new: String,
    change: String,
    interval: String,
    verdict: Verdict,
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.1}%")
    } else {
        "new".into()
    }
}

/// Calls a frame: whole when they are, else to one decimal.
fn per_frame_calls(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn row(stage: String, path: String, depth: u32, c: &Change) -> Row {
    Row {
        stage,
        path,
        depth,
        change_pct: c.change_pct,
        measure: c.measure.label(),
        calls: match c.calls_per_frame {
            // The measure column says "per frame"; the line under the table says it in words.
            Some((b, n)) => format!("{} → {}", per_frame_calls(b), per_frame_calls(n)),
            None => format!("{} → {}", c.base_calls, c.new_calls),
        },
        base: duration(c.base_mean_ns),
        new: duration(c.new_mean_ns),
        change: pct(c.change_pct),
        interval: c.interval_pct.map_or("-".into(), |(lo, hi)| format!("{} … {}", pct(lo), pct(hi))),
        verdict: c.verdict,
    }
}

fn rows(d: &Diff) -> Vec<Row> {
    let frames = || "(frames)".to_owned();
    let mut out: Vec<Row> = d.frames.iter().chain(&d.frames_gpu).map(|c| row(frames(), frames(), 0, c)).collect();
    for s in &d.stages {
        let name = s.path.last().map_or(String::new(), |n| shorten(n, NAME_CHARS).into_owned());
        let path = crate::units::display_path(&s.path, " / ");
        for (i, c) in s.changes.iter().enumerate() {
            out.push(row(if i == 0 { name.clone() } else { String::new() }, path.clone(), s.depth, c));
        }
    }
    out
}

fn verdict_color(v: Verdict) -> Option<Color> {
    match v {
        Verdict::Slower => Some(Color::Red),
        Verdict::Faster => Some(Color::Green),
        _ => None,
    }
}

/// The comparison as a terminal table and a few lines of words.
pub fn render_diff_table(d: &Diff, labels: DiffLabels<'_>, opts: &TableOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "stageprof diff: {} → {}", terminal_safe(labels.base), terminal_safe(labels.new));
    let mut t = new_table(opts);
    t.set_header(["stage", "measure", "calls", "base mean", "new mean", "change", "95% interval", "verdict"]);
    for r in rows(d) {
        let indent = "  ".repeat(r.depth as usize);
        let mut verdict = Cell::new(r.verdict.label());
        if let (true, Some(c)) = (opts.color, verdict_color(r.verdict)) {
            verdict = verdict.fg(c).add_attribute(Attribute::Bold);
        }
        t.add_row(vec![
            Cell::new(format!("{indent}{}", terminal_safe(&r.stage))),
            Cell::new(r.measure),
            Cell::new(r.calls).set_alignment(CellAlignment::Right),
            Cell::new(r.base).set_alignment(CellAlignment::Right),
            Cell::new(r.new).set_alignment(CellAlignment::Right),
            Cell::new(r.change).set_alignment(CellAlignment::Right),
            Cell::new(r.interval).set_alignment(CellAlignment::Right),
            verdict,
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    describe(d, &mut out);
    out
}

/// The verdict in words, memory changes, and what appeared or went.
fn describe(d: &Diff, out: &mut String) {
    let _ = writeln!(
        out,
        "{} slower, {} faster, {} unchanged within noise, {} with too few calls for an interval (fewer than {MIN_CALLS}); \
         changes under {}% count as unchanged",
        d.count(Verdict::Slower),
        d.count(Verdict::Faster),
        d.count(Verdict::Unchanged),
        d.count(Verdict::TooFewCalls),
        d.min_change_pct
    );
    for s in &d.stages {
        let carriers = d.carried_by_children(s);
        if !carriers.is_empty() {
            let named: Vec<String> = carriers
                .iter()
                .map(|(child, c)| {
                    let name = child.path.last().map_or(String::new(), |n| terminal_safe(&shorten(n, NAME_CHARS)));
                    format!("{name} {} {}", c.measure.label(), pct(c.change_pct))
                })
                .collect();
            let _ = writeln!(
                out,
                "too few calls for {}; its nested stages carry the change: {}",
                terminal_safe(&crate::units::display_path(&s.path, "/")),
                named.join(", ")
            );
        }
        for c in s.changes.iter().filter(|c| c.calls_changed()) {
            let (b, n) = c.calls_per_frame.expect("changed");
            let _ = writeln!(
                out,
                "calls: {} {} → {} calls a frame ({} frames → {})",
                terminal_safe(&crate::units::display_path(&s.path, "/")),
                per_frame_calls(b),
                per_frame_calls(n),
                c.base_calls,
                c.new_calls
            );
        }
        for m in s.memory.iter().filter(|m| m.base_bytes != m.new_bytes) {
            let _ = writeln!(
                out,
                "memory: {} {}",
                terminal_safe(&crate::units::display_path(&s.path, "/")),
                memory_text(m)
            );
        }
    }
    let list = |out: &mut String, what: &str, items: &[String]| {
        if !items.is_empty() {
            let shown: Vec<String> = items.iter().take(10).map(|i| terminal_safe(i)).collect();
            let more = if items.len() > 10 { format!(" and {} more", items.len() - 10) } else { String::new() };
            let _ = writeln!(out, "{what} ({}): {}{more}", items.len(), shown.join(", "));
        }
    };
    list(out, "stages only in new", &d.added_stages);
    list(out, "stages only in base", &d.removed_stages);
    list(out, "kernels only in new", &d.added_kernels);
    list(out, "kernels only in base", &d.removed_kernels);
}

fn memory_text(m: &MemoryChange) -> String {
    let show = |b: Option<i64>| b.map_or("-".into(), |b| signed_bytes(b).trim_start_matches('+').to_string());
    let delta = match (m.base_bytes, m.new_bytes) {
        (Some(a), Some(b)) => format!(" ({})", signed_bytes(b - a)),
        _ => String::new(),
    };
    format!("{} {} → {}{delta}", m.what, show(m.base_bytes), show(m.new_bytes))
}

/// The comparison as JSON (docs/summary-schema.md, "diff").
pub fn diff_json(d: &Diff, labels: DiffLabels<'_>) -> String {
    let mut w = JsonWriter::new();
    w.begin_object().field_str("base", labels.base).field_str("new", labels.new);
    w.field_f64("min_change_pct", d.min_change_pct);
    for (key, change) in [("frames", &d.frames), ("frames_gpu", &d.frames_gpu)] {
        w.key(key);
        match change {
            Some(c) => change_json(&mut w, c),
            None => {
                w.raw("null");
            }
        }
    }
    w.key("stages").begin_array();
    for s in &d.stages {
        w.begin_object().field_strs("path", s.path.iter().map(String::as_str));
        w.key("changes").begin_array();
        for c in &s.changes {
            change_json(&mut w, c);
        }
        w.end_array();
        w.key("memory").begin_array();
        for m in &s.memory {
            w.begin_object()
                .field_str("what", m.what)
                .field_opt("base_bytes", m.base_bytes)
                .field_opt("new_bytes", m.new_bytes)
                .end_object();
        }
        w.end_array().end_object();
    }
    w.end_array();
    w.field_strs("added_stages", d.added_stages.iter().map(String::as_str))
        .field_strs("removed_stages", d.removed_stages.iter().map(String::as_str))
        .field_strs("added_kernels", d.added_kernels.iter().map(String::as_str))
        .field_strs("removed_kernels", d.removed_kernels.iter().map(String::as_str));
    w.end_object();
    w.finish()
}

fn change_json(w: &mut JsonWriter, c: &Change) {
    w.begin_object()
        .field_str("measure", c.measure.label())
        .field("base_calls", c.base_calls)
        .field("new_calls", c.new_calls)
        .field("base_mean_ns", c.base_mean_ns)
        .field("new_mean_ns", c.new_mean_ns);
    if let Some((b, n)) = c.calls_per_frame {
        w.field_f64("base_calls_per_frame", b).field_f64("new_calls_per_frame", n);
    }
    if c.change_pct.is_finite() {
        w.field_f64("change_pct", c.change_pct);
    } else {
        w.key("change_pct").raw("null");
    }
    w.key("interval_pct");
    match c.interval_pct {
        Some((lo, hi)) => {
            w.begin_array().f64(lo).f64(hi).end_array();
        }
        None => {
            w.raw("null");
        }
    }
    w.field_str("verdict", c.verdict.label()).end_object();
}

/// The comparison as one self-contained HTML page in the report's style:
/// the measures that changed first (largest change first), then every
/// stage in its tree, then the same words as the terminal's.
#[cfg(feature = "html")]
pub fn render_diff_html(d: &Diff, labels: DiffLabels<'_>) -> String {
    use crate::summary::html::{section, STYLE};
    use crate::svg::escape;
    let title = format!("stageprof diff: {} → {}", labels.base, labels.new);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(&title)
    );
    let rows = rows(d);
    let table = |page: &mut String, id: &str, rows: &[&Row], in_tree: bool| {
        let _ = write!(page, "<table id=\"{id}\"><thead><tr><th>stage</th><th>measure</th><th>calls</th><th>base mean</th><th>new mean</th><th>change</th><th>95% interval</th><th>verdict</th></tr></thead><tbody>");
        for r in rows {
            let class = match r.verdict {
                Verdict::Slower => " class=\"slower\"",
                Verdict::Faster => " class=\"faster\"",
                _ => "",
            };
            let (indent, name) = if in_tree { (r.depth, &r.stage) } else { (0, &r.path) };
            let _ = write!(
                page,
                "<tr{class}><td class=\"name\" style=\"padding-left:{}em\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                0.4 + 1.2 * indent as f64,
                escape(name),
                r.measure,
                escape(&r.calls),
                r.base,
                r.new,
                r.change,
                escape(&r.interval),
                r.verdict.label()
            );
        }
        page.push_str("</tbody></table>");
    };
    let mut changed: Vec<&Row> =
        rows.iter().filter(|r| matches!(r.verdict, Verdict::Slower | Verdict::Faster)).collect();
    changed.sort_by(|a, b| b.change_pct.abs().total_cmp(&a.change_pct.abs()));
    let explain = format!(
        "Measures whose 95% interval is clear of no change and that moved by {}% or more, the largest change first.",
        d.min_change_pct
    );
    section(&mut page, "changed", "Changed", &escape(&explain));
    if changed.is_empty() {
        page.push_str("<p>No stage changed beyond noise.</p>");
    } else {
        table(&mut page, "changed-table", &changed, false);
    }
    page.push_str("</section>");
    section(&mut page, "stages", "Every stage", "Each stage's measures, nested as recorded.");
    table(&mut page, "diff-table", &rows.iter().collect::<Vec<_>>(), true);
    page.push_str("</section>");
    let mut words = String::new();
    describe(d, &mut words);
    section(&mut page, "notes", "In words", "");
    let _ = writeln!(page, "<pre>{}</pre></section></body></html>", escape(&words));
    page
}
