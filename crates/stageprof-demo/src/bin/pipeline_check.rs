//! Checks stageprof's pipeline model on the pipelined demo: from a run with
//! every stage at its real work, it predicts the throughput with one
//! stage's work scaled (each stage, by 0.5 and 2 unless told otherwise); the
//! prediction is then compared with a run right after where that stage's
//! work really is scaled, its throughput measured by the demo's own clock
//! (frames leaving the last stage, the pipeline filling up not counted).
//!
//!   cargo run --release -p stageprof-demo --bin pipeline_check -- [--pin] [FRAMES] [FACTOR,...] [WIDTHxHEIGHT]
//!
//! The model holds where every stage has a core of its own (six stages):
//! on fewer cores the stages compete for them and the check says so.
//! `--pin` keeps each stage's thread on a core of its own (Linux), so that
//! the runs differ less from one another on a shared machine.

use std::process::ExitCode;

use stageprof::{Config, Format};
use stageprof_demo::pipeline::PipelineConfig;
use stageprof_demo::pipelined::{one_cpu_per_core, profile_pipelined, Placement, StageCosts, STAGES};
use stageprof_demo::scene::Rig;

/// How far a prediction may be from the measurement.
const TOLERANCE: f64 = 0.10;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pin = args.iter().any(|a| a == "--pin");
    args.retain(|a| a != "--pin");
    let frames: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
    let factors: Vec<f64> =
        args.get(1).map_or(vec![0.5, 2.0], |a| a.split(',').filter_map(|f| f.parse().ok()).collect());
    let (width, height) = args
        .get(2)
        .and_then(|a| a.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or((160, 120));
    let config = PipelineConfig { width, height, ..PipelineConfig::default() };
    let rig = Rig::new(config.views, config.width, config.height);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = match one_cpu_per_core() {
        // The first core is left to the main thread and the collector.
        cpus if pin && cpus.len() > STAGES.len() => Placement::Pinned(cpus[1..=STAGES.len()].to_vec()),
        cpus if pin => {
            println!(
                "--pin: {} cores found, {} needed: the stages run where the OS puts them",
                cpus.len(),
                STAGES.len() + 1
            );
            Placement::Free
        }
        _ => Placement::Free,
    };
    let placed = match &placement {
        Placement::Pinned(cpus) => format!(", stages pinned to CPUs {cpus:?}"),
        Placement::Free => String::new(),
    };
    println!("pipelined demo, {frames} frames of {width}x{height}, {cores} cores{placed}");
    let out = std::env::temp_dir().join(format!("stageprof-pipeline-check-{}", std::process::id()));
    let run = |costs: &StageCosts| {
        let profile = Config { output_dir: out.clone(), formats: vec![Format::Summary], ..Config::default() };
        profile_pipelined(profile, &config, &rig, frames, costs, &placement)
    };

    let mut worst: f64 = 0.0;
    let mut row = |what: String, predicted: Option<f64>, measured: Option<f64>| {
        let error = predicted.zip(measured).map_or(f64::INFINITY, |(p, m)| p / m - 1.0);
        worst = worst.max(error.abs());
        let verdict = if error.abs() <= TOLERANCE { "ok" } else { "OFF" };
        let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        println!("{what:<24} {:>12} {:>12} {:>+8.1}%  {verdict}", show(predicted), show(measured), 100.0 * error);
    };
    println!("{:<24} {:>12} {:>12} {:>9}", "stage x factor", "predicted/s", "measured/s", "error");
    for (index, name) in STAGES.iter().enumerate() {
        for &factor in &factors {
            // Each prediction from a run at factor 1 just before: the shared machines
            // drift by more than 10% over minutes, and this way the drift between the
            // two runs is all that counts.
            let (base, report) = run(&StageCosts::default());
            let Some(model) = report.summary.and_then(|s| s.pipeline) else {
                eprintln!("the run at factor 1 recorded no pipeline");
                return ExitCode::FAILURE;
            };
            let Some(stage) = model.stages.iter().position(|s| s.thread == *name) else {
                eprintln!("stage {name} is missing from the pipeline stageprof saw");
                return ExitCode::FAILURE;
            };
            row(format!("  (x1, before {name})"), model.predicted_per_s, base.frames_per_s);
            let (scaled, _) = run(&StageCosts::default().with((index, factor)));
            row(format!("{name} x{factor}"), model.predicted_with(stage, factor), scaled.frames_per_s);
        }
    }
    println!("worst error {:.1}% (bound {:.0}%)", 100.0 * worst, 100.0 * TOLERANCE);
    if cores < STAGES.len() {
        println!(
            "note: {cores} cores for {} stages: the stages compete for cores, which the model leaves out",
            STAGES.len()
        );
    }
    if worst <= TOLERANCE {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
