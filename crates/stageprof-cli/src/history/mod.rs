//! `stageprof history`: runs stored in a SQLite file, and each stage's time
//! per call across them, with sparklines and change points.

mod store;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use stageprof_analysis::Summary;
use stageprof_render::history::{render_run, render_trends, StageTrend};
use stageprof_render::TableOptions;

use crate::error::CliError;
use crate::report::{profiles_in, summarize_listed};
use store::{default_path, History, RunMeta};

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
    /// Store runs' summaries (profiles `report` reads, a directory standing for its profiles; each its own run), with time, host, GPU and git commit.
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

pub(crate) fn run(args: &HistoryArgs) -> Result<(), CliError> {
    let path = match &args.db {
        Some(p) => p.clone(),
        None => default_path()?,
    };
    let mut history = History::open(&path)?;
    let text = match &args.action {
        Some(Action::Record { runs, labels }) => {
            let commit = git_commit();
            let mut text = String::new();
            for path_given in runs {
                // A directory is its profiles (a run's output directory: one), as for `report`.
                for (files, summary) in summarize_listed(profiles_in(path_given)?, 3, None)? {
                    text += &record(&mut history, &files, &summary, labels, commit.as_deref(), &path)?;
                }
            }
            text
        }
        Some(Action::Show { id }) => show(&history, *id)?,
        None => trends(&history, args)?,
    };
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(CliError::Stdout)
}

fn record(
    history: &mut History,
    files: &[PathBuf],
    summary: &Summary,
    labels: &[String],
    commit: Option<&str>,
    db: &std::path::Path,
) -> Result<String, CliError> {
    let source = stageprof_readers::label(files);
    let meta = RunMeta { source, git_commit: commit.map(str::to_owned), labels: labels.to_vec() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let id = history.record(summary, &meta, now)?;
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

fn show(history: &History, id: i64) -> Result<String, CliError> {
    Ok(render_run(id, &history.stages_of(id)?, &table_options()))
}

fn trends(history: &History, args: &HistoryArgs) -> Result<String, CliError> {
    let Some(newest) = history.newest_run()? else {
        return Ok("no runs recorded yet: `stageprof history record PROFILE` stores one\n".into());
    };
    let mut trends = Vec::new();
    for stage in history.stages_of(newest.id)?.into_iter().take(args.stages) {
        trends.push(StageTrend { series: history.series(&stage.path)?, stage });
    }
    Ok(render_trends(&newest, &trends, args.last, &table_options()))
}

fn table_options() -> TableOptions {
    TableOptions::for_output(std::io::stdout().is_terminal())
}
