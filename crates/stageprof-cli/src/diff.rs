//! `stageprof diff`: is the new run faster or slower than the base, stage by
//! stage, beyond noise? With `--fail-on-regression`, a CI gate.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use stageprof_analysis::diff::{diff, DiffOptions};
use stageprof_analysis::Summary;
use stageprof_render::TableOptions;
use stageprof_render::{diff_json, render_diff_html, render_diff_table, DiffLabels};

use crate::error::CliError;
use crate::report::{profiles_in, summarize_listed, OutputFormat};

/// Exit status when `--fail-on-regression` finds a regression (errors exit 1).
pub(crate) const REGRESSION_EXIT: u8 = 3;

#[derive(Args)]
pub(crate) struct DiffArgs {
    /// The base run: a profile `report` reads, or a directory of them (the ranks of one job).
    base: PathBuf,
    /// The new run, likewise.
    new: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Also write the comparison as one HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Exit with status 3 when a stage is slower than this many percent with
    /// 95% confidence (the lower end of its interval is above it).
    #[arg(long, value_name = "PCT")]
    fail_on_regression: Option<f64>,
    /// Changes smaller than this many percent count as unchanged, however certain.
    #[arg(long, value_name = "PCT", default_value_t = 1.0)]
    min_change: f64,
}

pub(crate) fn run(args: &DiffArgs) -> Result<ExitCode, CliError> {
    let (base, new) = std::thread::scope(|scope| {
        let base = scope.spawn(|| read_side(&args.base));
        let new = read_side(&args.new);
        (base.join().unwrap_or(Err(CliError::ReaderPanicked)), new)
    });
    let (base, new) = (base?, new?);
    let d = diff(&base, &new, DiffOptions { min_change_pct: args.min_change }).map_err(CliError::Diff)?;
    let (base_label, new_label) = (args.base.display().to_string(), args.new.display().to_string());
    let labels = DiffLabels { base: &base_label, new: &new_label };
    if let Some(path) = &args.html {
        std::fs::write(path, render_diff_html(&d, labels)).map_err(CliError::file("write", path))?;
    }
    let text = match args.format {
        OutputFormat::Text => render_diff_table(&d, labels, &TableOptions::for_output(std::io::stdout().is_terminal())),
        OutputFormat::Json => diff_json(&d, labels) + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(CliError::Stdout)?;
    let Some(pct) = args.fail_on_regression else { return Ok(ExitCode::SUCCESS) };
    let regressions = d.regressions(pct);
    if regressions.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (stage, change) in &regressions {
        let (lo, _) = change.interval_pct.unwrap_or_default();
        eprintln!(
            "stageprof: regression: {} {} {:+.1}% (at least {lo:+.1}% with 95% confidence, over the {pct}% allowed)",
            stage.path.join("/"),
            change.measure.label(),
            change.change_pct
        );
    }
    Ok(ExitCode::from(REGRESSION_EXIT))
}

/// One side: a profile, or every profile in a directory (ranks).
fn read_side(path: &Path) -> Result<Vec<Summary>, CliError> {
    Ok(summarize_listed(profiles_in(path)?, 3, None)?.into_iter().map(|(_, summary)| summary).collect())
}
