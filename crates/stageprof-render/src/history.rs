//! The run history's views: one stored run's stages, and each stage's time
//! per call across runs with a sparkline and its change points. The CLI
//! stores runs (SQLite); this draws what it reads back.

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment};
use stageprof_analysis::change_points;
use stageprof_analysis::figures::{self, FigureValue, StageFigure};

use crate::terminal::{new_table, TableOptions};
use crate::units::{duration, figure_text, terminal_safe};

/// The stage figures a history keeps for each run, in the order it shows them.
pub const HISTORY_FIGURES: &[&StageFigure] = &[
    &figures::CALLS,
    &figures::WALL,
    &figures::SELF,
    &figures::MEAN,
    &figures::P95,
    &figures::CPU,
    &figures::GPU_BUSY,
    &figures::MEM_PEAK,
    &figures::GPU_MEM_PEAK,
];

/// Runs on each side of a candidate change point.
pub const CHANGE_WINDOW: usize = 5;
/// Smallest shift reported as a change point, in percent.
pub const CHANGE_MIN_PCT: f64 = 5.0;
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A stored run, as listed.
#[derive(Clone, Debug)]
pub struct HistoryRun {
    /// Its number in the history.
    pub id: i64,
    /// When it was stored, Unix nanoseconds.
    pub recorded_unix_ns: i64,
    /// The profile it was read from.
    pub source: String,
    /// The machine's name, where known.
    pub host: Option<String>,
    /// The GPUs the profile names.
    pub gpu: Option<String>,
    /// The commit checked out where it was stored.
    pub git_commit: Option<String>,
    /// Labels given when it was stored.
    pub labels: Vec<String>,
    /// Frames, where there were any.
    pub frames: Option<u64>,
    /// Mean frame time.
    pub frame_mean_ns: Option<u64>,
}

/// One stage's figures in one run: [`HISTORY_FIGURES`], in order.
#[derive(Clone, Debug)]
pub struct HistoryStage {
    /// Names joined by `/`.
    pub path: String,
    /// One per history figure; `None` where not measured.
    pub values: Vec<Option<FigureValue>>,
}

impl HistoryStage {
    /// The stage's value of one of [`HISTORY_FIGURES`].
    pub fn value(&self, figure: &StageFigure) -> Option<FigureValue> {
        let i = HISTORY_FIGURES.iter().position(|f| f.key == figure.key)?;
        self.values.get(i).copied().flatten()
    }
}

/// A stage of the newest run with its mean time per call in every run that
/// has it, oldest first: `(run id, mean ns)`.
#[derive(Clone, Debug)]
pub struct StageTrend {
    /// The stage in the newest run.
    pub stage: HistoryStage,
    /// `(run id, mean ns per call)`, oldest run first.
    pub series: Vec<(i64, u64)>,
}

/// One stored run's stages.
pub fn render_run(id: i64, stages: &[HistoryStage], opts: &TableOptions) -> String {
    let shown: Vec<usize> =
        (0..HISTORY_FIGURES.len()).filter(|&i| stages.iter().any(|s| s.values[i].is_some())).collect();
    let mut t = new_table(opts);
    t.set_header(std::iter::once("stage").chain(shown.iter().map(|&i| HISTORY_FIGURES[i].label)));
    for s in stages {
        let cells = shown.iter().map(|&i| right(figure_text(HISTORY_FIGURES[i].unit, s.values[i])));
        t.add_row(std::iter::once(Cell::new(terminal_safe(&s.path))).chain(cells));
    }
    format!("run {id}\n{t}\n")
}

/// The newest run, and each of its stages' time per call across runs.
pub fn render_trends(newest: &HistoryRun, trends: &[StageTrend], last: usize, opts: &TableOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "newest run {} ({}{}{}{})",
        newest.id,
        utc(newest.recorded_unix_ns),
        newest.git_commit.as_ref().map_or(String::new(), |c| format!(", commit {c}")),
        newest.host.as_ref().map_or(String::new(), |h| format!(", host {h}")),
        if newest.labels.is_empty() { String::new() } else { format!(", labels {}", newest.labels.join(" ")) },
    );
    if let Some(gpu) = &newest.gpu {
        let _ = writeln!(out, "gpu {gpu}");
    }
    if let (Some(frames), Some(mean)) = (newest.frames, newest.frame_mean_ns) {
        let _ = writeln!(out, "{frames} frames, mean {} ({})", duration(mean), terminal_safe(&newest.source));
    }
    let mut t = new_table(opts);
    t.set_header(["stage", "runs", "mean / call", "vs previous", "trend (newest last)", "change points"]);
    for trend in trends {
        let series = &trend.series;
        let mean = trend.stage.value(&figures::MEAN);
        let values: Vec<f64> = series.iter().map(|&(_, v)| v as f64).collect();
        let previous = series.len().checked_sub(2).map(|i| values[i]);
        let vs_previous = match (previous.filter(|&p| p > 0.0), mean) {
            (Some(p), Some(m)) => format!("{:+.1}%", 100.0 * (m.as_f64() / p - 1.0)),
            _ => "-".into(),
        };
        let points: Vec<String> = change_points(&values, CHANGE_WINDOW, CHANGE_MIN_PCT)
            .iter()
            .rev()
            .take(3)
            .map(|c| format!("run {}: {:+.0}%", series[c.index].0, c.shift_pct()))
            .collect();
        let recent = &values[values.len().saturating_sub(last)..];
        t.add_row(vec![
            Cell::new(terminal_safe(&trend.stage.path)),
            right(series.len().to_string()),
            right(figure_text(figures::MEAN.unit, mean)),
            right(vs_previous),
            Cell::new(sparkline(recent)),
            Cell::new(if points.is_empty() { "-".into() } else { points.join(", ") }),
        ]);
    }
    let _ = writeln!(out, "{t}");
    let _ = writeln!(
        out,
        "change points: the median of {CHANGE_WINDOW} runs moved by at least {CHANGE_MIN_PCT}% and beyond their noise (newest first)"
    );
    out
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

/// Values as bars from the lowest to the highest.
fn sparkline(values: &[f64]) -> String {
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    values
        .iter()
        .map(|&v| {
            let level = if hi > lo { (v - lo) / (hi - lo) * (SPARKS.len() - 1) as f64 } else { 0.0 };
            SPARKS[level.round() as usize]
        })
        .collect()
}

/// `2026-11-21 10:47 UTC` from Unix nanoseconds (days to civil date: Howard Hinnant's method).
fn utc(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_and_dates() {
        assert_eq!(sparkline(&[1.0, 2.0, 3.0, 8.0]), "▁▂▃█");
        assert_eq!(sparkline(&[5.0, 5.0]), "▁▁");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_258_020 * 1_000_000_000), "2026-11-21 10:47 UTC");
    }
}
