//! `stageprof`: read profiles after the fact.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod demo;
mod diff;
mod error;
mod history;
mod progress;
mod report;
mod table_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The demo profiles itself: host memory per stage needs the tracking allocator.
#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

#[derive(Parser)]
#[command(name = "stageprof", version, about = "Where a pipeline's time and memory go, stage by stage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the per-stage report of profiles: native files, PyTorch and Chrome traces.
    Report(report::ReportArgs),
    /// Run a real multi-view-stereo pipeline on a synthetic scene, profiled.
    Demo(demo::DemoArgs),
    /// Compare two runs stage by stage: change per call with a 95% interval, and a verdict.
    Diff(diff::DiffArgs),
    /// Store runs in a history database and show each stage's trend across them.
    History(history::HistoryArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(args) => report::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::demo(&args).map(|()| ExitCode::SUCCESS).map_err(error::CliError::Demo),
        Command::Diff(args) => diff::run(&args),
        Command::History(args) => history::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stageprof: {e}");
            ExitCode::FAILURE
        }
    }
}
