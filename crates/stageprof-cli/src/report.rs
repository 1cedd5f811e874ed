//! `stageprof report`: the same table or summary the recorder prints, from a file.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::MultiProgress;

use crate::error::CliError;
use crate::progress::ProgressReader;
use stageprof_analysis::{compare_ranks, Summary};
use stageprof_readers::{label, Listed};
use stageprof_render::{report_html, report_json, report_table, report_with, RankInput, ReportError};

use crate::table_args::TableArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OutputFormat {
    /// The terminal table.
    Text,
    /// The JSON summary (docs/summary-schema.md).
    Json,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Profiles to report: native stageprof files (stageprof-out/profile.stgp), PyTorch
    /// profiler traces, Chrome trace JSON; plain or gzipped. Several files are the
    /// ranks of one job, reported side by side; a directory stands for its
    /// profiles and its subdirectories' native ones (rank-N/profile.stgp), the
    /// kept parts of a bounded run (profile.N.stgp) for one profile.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// How many bottlenecks to name.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Also write the profile as a Chrome trace (Perfetto UI, chrome://tracing) to this file.
    #[arg(long, value_name = "FILE")]
    chrome: Option<PathBuf>,
    /// Also write the HTML report (one self-contained page) to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    table: TableArgs,
}

pub(crate) fn run(args: &ReportArgs) -> Result<(), CliError> {
    let listed: Vec<Listed> =
        args.files.iter().map(|p| profiles_in(p)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    if args.chrome.is_some() && listed.len() > 1 {
        return Err(CliError::Usage("--chrome takes a single input profile"));
    }
    let (profiles, summaries): (Vec<Vec<PathBuf>>, Vec<Summary>) =
        summarize_listed(listed, args.top as usize, args.chrome.as_deref())?.into_iter().unzip();
    // Several profiles are several ranks of one job.
    let ranks: Vec<RankInput<'_>> = summaries
        .iter()
        .zip(&profiles)
        .enumerate()
        .map(|(i, (s, files))| RankInput { label: label(files), rank: s.run.rank.unwrap_or(i as u32), summary: s })
        .collect();
    let rows = if ranks.len() > 1 { compare_ranks(&summaries) } else { Vec::new() };
    if let Some(path) = &args.html {
        std::fs::write(path, report_html(&ranks, &rows)).map_err(CliError::file("write", path))?;
    }
    let text = match args.format {
        OutputFormat::Text => report_table(&ranks, &rows, &args.table.options(std::io::stdout().is_terminal())),
        OutputFormat::Json => report_json(&ranks, &rows) + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(CliError::Stdout)
}

/// The profiles a path names (see [`stageprof_readers::profiles_in`]); a directory with none is an error.
pub(crate) fn profiles_in(path: &Path) -> Result<Vec<Listed>, CliError> {
    let profiles = stageprof_readers::profiles_in(path).map_err(CliError::file("list", path))?;
    if profiles.is_empty() {
        return Err(CliError::NoProfiles { dir: path.to_path_buf() });
    }
    Ok(profiles)
}

/// Reads and summarizes the profiles, several at once (ranks of one job);
/// their warnings go to stderr in order. A profile the readers say
/// to skip ([`Listed::skipped_for`]) is named on stderr; where nothing
/// else is left, its directory holds no profiles.
pub(crate) fn summarize_listed(
    listed: Vec<Listed>,
    top: usize,
    chrome: Option<&Path>,
) -> Result<Vec<(Vec<PathBuf>, Summary)>, CliError> {
    let bars = &MultiProgress::new();
    // As many at once as there are cores: each read holds its profile's working set.
    let at_once = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reads: Vec<Result<Summary, CliError>> = Vec::new();
    for batch in listed.chunks(at_once) {
        std::thread::scope(|scope| {
            let batch: Vec<_> =
                batch.iter().map(|l| scope.spawn(move || summarize(&l.files, top, chrome, bars))).collect();
            reads.extend(batch.into_iter().map(|r| r.join().unwrap_or(Err(CliError::ReaderPanicked))));
        });
    }
    let mut read = Vec::new();
    let mut skipped = None;
    for (listed, summary) in listed.into_iter().zip(reads) {
        let summary = match summary {
            Err(CliError::Read { path, error }) if listed.skipped_for(&error) => {
                eprintln!("stageprof: warning: skipped {}: {error}", path.display());
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                skipped = Some(CliError::NoProfiles { dir });
                continue;
            }
            summary => summary?,
        };
        print_warnings(&listed.files, &summary);
        read.push((listed.files, summary));
    }
    match skipped {
        Some(nothing_else) if read.is_empty() => Err(nothing_else),
        _ => Ok(read),
    }
}

/// Reads a profile (a file, or a bounded run's parts), summarizes it and
/// writes its Chrome trace if asked.
fn summarize(files: &[PathBuf], top: usize, chrome: Option<&Path>, bars: &MultiProgress) -> Result<Summary, CliError> {
    let path = files.first().ok_or(CliError::Usage("a profile has a file"))?;
    let mut opened = Vec::new();
    for p in files {
        opened.push(File::open(p).map_err(CliError::file("open", p))?);
    }
    let chrome_out = match chrome {
        Some(c) => Some(File::create(c).map(BufWriter::new).map_err(CliError::file("create", c))?),
        None => None,
    };
    let progress = |file: File| {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        BufReader::new(ProgressReader::new(file, size, &format!("reading {}", path.display()), bars))
    };
    let read = |sink: &mut dyn stageprof_model::ProfileSink| {
        stageprof_readers::read_opened(opened, progress, sink).map(|p| (p.catalog, p.run))
    };
    let mut summary = report_with(read, top, chrome_out).map_err(|e| match e {
        ReportError::Read(error) => CliError::Read { path: path.to_path_buf(), error },
        ReportError::Chrome(error, _) => CliError::Chrome { path: path.to_path_buf(), error },
    })?;
    summary.run.source = format!("{} ({})", summary.run.source, label(files));
    Ok(summary)
}

/// The problems found inside a profile's files, on stderr.
fn print_warnings(files: &[PathBuf], summary: &Summary) {
    let label = label(files);
    for w in &summary.run.warnings {
        eprintln!("stageprof: warning: {label}: {w}");
        if let Some(fix) = w.fix() {
            eprintln!("stageprof:   to fix: {fix}");
        }
    }
}
