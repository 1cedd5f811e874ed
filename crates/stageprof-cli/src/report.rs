//! `stageprof report`: the same table or summary the recorder prints, from a file.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use stageprof_analysis::{read_native, Aggregator, Summary};
use stageprof_render::table::terminal_width;
use stageprof_render::{render_table, summary_json, write_chrome_trace, TableOptions};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    /// The terminal table.
    Text,
    /// The JSON summary (docs/summary-schema.md).
    Json,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Profiles to report (native stageprof files, e.g. stageprof-out/profile.stgp).
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
}

pub fn run(args: &ReportArgs) -> Result<(), String> {
    if args.chrome.is_some() && args.files.len() > 1 {
        return Err("--chrome takes a single input profile".into());
    }
    let mut out = std::io::stdout().lock();
    let tty = std::io::stdout().is_terminal();
    for (i, path) in args.files.iter().enumerate() {
        let summary = summarize(path, args.top as usize)?;
        let text = match args.format {
            OutputFormat::Text => {
                let width = tty.then(terminal_width);
                let table = render_table(&summary, TableOptions { color: tty, width });
                if args.files.len() > 1 {
                    format!("{}== {} ==\n{table}", if i > 0 { "\n" } else { "" }, path.display())
                } else {
                    table
                }
            }
            OutputFormat::Json => summary_json(&summary) + "\n",
        };
        out.write_all(text.as_bytes()).map_err(|e| format!("writing the report: {e}"))?;
        if let Some(chrome) = &args.chrome {
            let input = open(path)?;
            let output = File::create(chrome).map_err(|e| format!("cannot create {}: {e}", chrome.display()))?;
            write_chrome_trace(input, std::io::BufWriter::new(output))
                .map_err(|e| format!("{}: {e}", chrome.display()))?;
        }
    }
    Ok(())
}

fn open(path: &Path) -> Result<BufReader<File>, String> {
    File::open(path).map(BufReader::new).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Reads a profile and summarizes it; problems in the file become warnings in the summary.
fn summarize(path: &Path, top: usize) -> Result<Summary, String> {
    let mut aggregator = Aggregator::default();
    let profile = read_native(open(path)?, &mut aggregator).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut run = profile.run;
    run.source = format!("stageprof ({})", path.display());
    let summary = aggregator.summary(&profile.catalog, run, top);
    for w in &summary.run.warnings {
        eprintln!("stageprof: warning: {}: {w}", path.display());
    }
    Ok(summary)
}
