//! `stageprof history`: runs stored in a SQLite file, and each stage's time
//! per call across them, with sparklines and change points.

mod store;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use comfy_table::{Cell, CellAlignment};
use stageprof_analysis::trend::change_points;
use stageprof_render::table::{new_table, terminal_width, TableOptions};
use stageprof_render::units::{bytes, duration, terminal_safe};

use crate::report::summarize;
use store::{default_path, History, RunMeta};

/// Runs on each side of a candidate change point.
const CHANGE_WINDOW: usize = 5;
/// Smallest shift reported as a change point, in percent.
const CHANGE_MIN_PCT: f64 = 5.0;
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(Args)]
pub(crate) struct HistoryArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The history database (default: stageprof/history.db in the user's data directory).
    #[arg(long, global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Runs drawn in each stage's sparkline, the newest.
    #[arg(long, default_value_t = 40)]
    last: usize,
    /// Stages shown, the longest in the newest run first.
    #[arg(long, default_value_t = 15)]
    stages: usize,
}

#[derive(Subcommand)]
enum Action {
    /// Store runs' summaries (profiles `report` reads; each its own run), with time, host, GPU and git commit.
    Record {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// A free-form label for the run (repeatable): a branch, a config name.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// The stored figures of one run.
    Show { id: i64 },
}

pub(crate) fn run(args: &HistoryArgs) -> Result<(), String> {
    let path = match &args.db {
        Some(p) => p.clone(),
        None => default_path()?,
    };
    let mut history = History::open(&path)?;
    let text = match &args.action {
        Some(Action::Record { runs, labels }) => {
            let commit = git_commit();
            let mut text = String::new();
            for run in runs {
                text += &record(&mut history, run, labels, commit.as_deref(), &path)?;
            }
            text
        }
        Some(Action::Show { id }) => show(&history, *id)?,
        None => trends(&history, args)?,
    };
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| format!("writing: {e}"))
}

fn record(
    history: &mut History,
    run: &std::path::Path,
    labels: &[String],
    commit: Option<&str>,
    db: &std::path::Path,
) -> Result<String, String> {
    let summary = summarize(run, 3, None)?;
    let meta =
        RunMeta { source: run.display().to_string(), git_commit: commit.map(str::to_owned), labels: labels.to_vec() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let id = history.record(&summary, &meta, now)?;
    Ok(format!(
        "recorded run {id} ({} stages{}) in {}\n",
        summary.stages.iter().filter(|s| !s.derived).count(),
        meta.git_commit.map_or(String::new(), |c| format!(", commit {c}")),
        db.display()
    ))
}

/// The commit checked out in the current directory, if it is in a git repository.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

fn show(history: &History, id: i64) -> Result<String, String> {
    let stages = history.stages_of(id)?;
    let mut t = table();
    t.set_header(["stage", "calls", "wall", "mean", "p95", "gpu busy", "host peak", "gpu peak"]);
    for s in &stages {
        let opt = |v: Option<u64>, f: fn(u64) -> String| v.map_or("-".into(), f);
        t.add_row(vec![
            Cell::new(terminal_safe(&s.path)),
            right(s.calls.to_string()),
            right(duration(s.wall_ns)),
            right(duration(s.mean_ns)),
            right(duration(s.p95_ns)),
            right(opt(s.gpu_busy_ns, duration)),
            right(opt(s.host_mem_peak_bytes, bytes)),
            right(opt(s.gpu_mem_peak_bytes, bytes)),
        ]);
    }
    Ok(format!("run {id}\n{t}\n"))
}

fn trends(history: &History, args: &HistoryArgs) -> Result<String, String> {
    let Some(newest) = history.newest_run()? else {
        return Ok("no runs recorded yet: `stageprof history record PROFILE` stores one\n".into());
    };
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
    let mut t = table();
    t.set_header(["stage", "runs", "mean / call", "vs previous", "trend (newest last)", "change points"]);
    for stage in history.stages_of(newest.id)?.iter().take(args.stages) {
        let series = history.series(&stage.path)?;
        let values: Vec<f64> = series.iter().map(|&(_, v)| v as f64).collect();
        let previous = series.len().checked_sub(2).map(|i| values[i]);
        let vs_previous = previous
            .filter(|&p| p > 0.0)
            .map_or("-".into(), |p| format!("{:+.1}%", 100.0 * (stage.mean_ns as f64 / p - 1.0)));
        let points: Vec<String> = change_points(&values, CHANGE_WINDOW, CHANGE_MIN_PCT)
            .iter()
            .rev()
            .take(3)
            .map(|c| format!("run {}: {:+.0}%", series[c.index].0, c.shift_pct()))
            .collect();
        let recent = &values[values.len().saturating_sub(args.last)..];
        t.add_row(vec![
            Cell::new(terminal_safe(&stage.path)),
            right(series.len().to_string()),
            right(duration(stage.mean_ns)),
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
    Ok(out)
}

fn table() -> comfy_table::Table {
    let tty = std::io::stdout().is_terminal();
    new_table(TableOptions { color: tty, width: tty.then(terminal_width) })
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
