//! `stageprof demo`: the multi-view-stereo pipeline of `stageprof-demo`,
//! profiled, with its reconstruction checked against the known surface.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use stageprof::{Config, Summary};
use stageprof_demo::check::DepthError;
use stageprof_demo::kernels::Device;
use stageprof_demo::pipeline::{run_frame, MemoryMode, PipelineConfig};
use stageprof_demo::pipelined::{profile_pipelined, Placement, StageCosts, STAGES};
use stageprof_demo::scene::Rig;
use stageprof_render::render_table;

use crate::table_args::TableArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Memory {
    /// Keep every pairwise result and the matcher's buffers until the frame is done.
    Accumulate,
    /// Turn each pair into depth at once; free the matcher before the later stages.
    Incremental,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeviceChoice {
    /// The GPU when one works (and this build has the `cuda` feature), else the CPU.
    Auto,
    Cpu,
    Cuda,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// What the image kernels run on.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Frames of the moving scene to reconstruct.
    #[arg(long, default_value_t = 3, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    frames: u32,
    /// Depth hypotheses processed at once by the plane sweep.
    #[arg(long, default_value_t = 8, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=48))]
    depth_batch: u32,
    /// When pairwise intermediate results are let go.
    #[arg(long, value_enum, default_value_t = Memory::Incremental)]
    memory: Memory,
    /// Cameras looking at the scene (one reference, the others around it).
    #[arg(long, default_value_t = 4, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(2..=12))]
    views: u32,
    /// Run once per value and compare: `depth-batch=1,2,4,8,16`.
    #[arg(long, value_name = "PARAM=V1,V2,...", value_parser = parse_sweep, conflicts_with = "pipelined")]
    sweep: Option<DepthBatches>,
    /// Run the stages on threads joined by bounded queues, a frame at a time flowing through.
    #[arg(long)]
    pipelined: bool,
    /// With --pipelined: scale a stage's work by a factor (it is repeated, or
    /// its last result reused): `depth_estimation=2`, `fusion=0.5`; repeatable.
    #[arg(long, value_name = "STAGE=FACTOR", value_parser = StageCosts::parse, requires = "pipelined")]
    stage_cost: Vec<(usize, f64)>,
    /// Where the outputs go (default: stageprof-out, or STAGEPROF_OUT).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    table: TableArgs,
}

/// The reconstruction must be at least this good, or the demo fails.
const MAX_MEDIAN_MM: f32 = 2.0;
const MAX_P90_MM: f32 = 5.0;

/// The depth batch sizes of a sweep.
#[derive(Clone, Debug)]
pub(crate) struct DepthBatches(Vec<u32>);

fn parse_sweep(text: &str) -> Result<DepthBatches, String> {
    let Some(values) = text.strip_prefix("depth-batch=") else {
        return Err(format!("{text:?}: the sweep is written depth-batch=1,2,4,8,16"));
    };
    let parsed: Result<Vec<u32>, String> = values
        .split(',')
        .map(|v| match v.trim().parse::<u32>() {
            Ok(n) if (1..=48).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} in {text:?}: each depth batch is a whole number from 1 to 48")),
        })
        .collect();
    let parsed = parsed?;
    if parsed.is_empty() {
        return Err(format!("{text:?}: no values"));
    }
    Ok(DepthBatches(parsed))
}

/// The device the kernels run on, or why the one asked for cannot be used.
fn device(choice: DeviceChoice) -> Result<Device, String> {
    #[cfg(feature = "cuda")]
    match (choice, stageprof_demo::cuda_kernels::cuda_kernels()) {
        (DeviceChoice::Cpu, _) => Ok(Device::Cpu),
        (_, Ok(_)) => Ok(Device::Cuda),
        (DeviceChoice::Cuda, Err(e)) => Err(format!("--device cuda: {e}")),
        (DeviceChoice::Auto, Err(e)) => {
            eprintln!("demo: running on the CPU ({e})");
            Ok(Device::Cpu)
        }
    }
    #[cfg(not(feature = "cuda"))]
    match choice {
        DeviceChoice::Cuda => Err("--device cuda: this stageprof was built without the `cuda` feature \
             (cargo run --release -p stageprof-cli --features cuda -- demo)"
            .into()),
        _ => Ok(Device::Cpu),
    }
}

fn pipeline_config(args: &DemoArgs, depth_batch: u32) -> Result<PipelineConfig, String> {
    Ok(PipelineConfig {
        device: device(args.device)?,
        views: args.views as usize,
        depth_batch: depth_batch as usize,
        memory: match args.memory {
            Memory::Accumulate => MemoryMode::Accumulate,
            Memory::Incremental => MemoryMode::Incremental,
        },
        ..PipelineConfig::default()
    })
}

/// One profiled run: the summary, the worst frame's error, frames per second.
struct Run {
    summary: Summary,
    worst: DepthError,
    frames_per_s: f64,
}

/// The profiler's settings for a demo run writing to `out`; the demo prints
/// the table itself ([`print_table`]), drawn as its flags ask.
fn profile_config(out: PathBuf) -> Result<Config, String> {
    let mut config = Config::load().map_err(|e| e.to_string())?;
    config.enabled = true;
    config.output_dir = out;
    config.formats.retain(|f| *f != stageprof::Format::Table);
    Ok(config)
}

/// The stage table of a demo run and the files it wrote, on stderr.
fn print_table(args: &DemoArgs, summary: &Summary, files: &[PathBuf]) {
    let mut text = render_table(summary, &args.table.options(std::io::stderr().is_terminal()));
    for f in files {
        text.push_str(&format!("wrote {}\n", f.display()));
    }
    eprint!("{text}");
}

fn run(args: &DemoArgs, depth_batch: u32, out: PathBuf, with_table: bool) -> Result<Run, String> {
    let config = profile_config(out)?;
    let pipeline = pipeline_config(args, depth_batch)?;
    let rig = Rig::new(pipeline.views, pipeline.width, pipeline.height);
    let session = stageprof::init_with(config);
    // Stages are timed on the stream the kernels run on.
    #[cfg(feature = "cuda")]
    let _stream = (pipeline.device == Device::Cuda)
        .then(|| stageprof_demo::cuda_kernels::cuda_kernels().map(|k| stageprof::cuda::use_stream(&k.stream)).ok())
        .flatten();
    eprintln!("demo: image kernels on the {:?}", pipeline.device);
    let bar =
        if std::io::stderr().is_terminal() { ProgressBar::new(u64::from(args.frames)) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("frame {pos}/{len} {bar:30} {elapsed} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let mut worst: Option<DepthError> = None;
    for frame in 0..args.frames as usize {
        let _frame = stageprof::frame();
        let result = run_frame(&pipeline, &rig, frame);
        let error = result.error.ok_or_else(|| format!("frame {frame}: nothing was reconstructed"))?;
        if worst.is_none_or(|w| error.median_mm > w.median_mm) {
            worst = Some(error);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let report = session.finish();
    let summary = report.summary.ok_or("the profiler recorded nothing")?;
    if with_table {
        print_table(args, &summary, &report.files);
    }
    Ok(Run { summary, worst: worst.expect("at least one frame"), frames_per_s: f64::from(args.frames) / elapsed })
}

/// Fails loudly if the reconstruction is worse than the stated bound.
fn check(worst: &DepthError) -> Result<(), String> {
    let line = format!(
        "reconstruction: depth error against the known surface, worst frame:\n  median {:.2} mm, 90th percentile {:.2} mm over {} points (bound: {MAX_MEDIAN_MM} mm, {MAX_P90_MM} mm)",
        worst.median_mm, worst.p90_mm, worst.points
    );
    if worst.median_mm > MAX_MEDIAN_MM || worst.p90_mm > MAX_P90_MM {
        return Err(format!("{line}: FAILED, a stage is broken"));
    }
    eprintln!("{line}: ok");
    Ok(())
}

pub(crate) fn demo(args: &DemoArgs) -> Result<(), String> {
    let out = args
        .out
        .clone()
        .or_else(|| std::env::var_os("STAGEPROF_OUT").map(PathBuf::from))
        .unwrap_or("stageprof-out".into());
    if args.pipelined {
        return pipelined(args, out);
    }
    stageprof_demo::pipeline::name_worker_threads();
    let Some(DepthBatches(batches)) = &args.sweep else {
        let r = run(args, args.depth_batch, out, true)?;
        return check(&r.worst);
    };
    // One run per batch size, each with its own outputs.
    let mut rows = Vec::new();
    for &b in batches {
        let r = run(args, b, out.join(format!("depth-batch-{b}")), false)?;
        check(&r.worst)?;
        let depth = r.summary.stages.iter().find(|s| s.name == "depth_estimation");
        rows.push((
            b,
            r.frames_per_s,
            depth.and_then(|s| s.process_mem_peak_bytes.or(s.host_mem_peak_bytes)).unwrap_or(0),
            depth.map_or(0, |s| s.wall_ns),
        ));
    }
    eprintln!("{}", sweep_table(&rows));
    Ok(())
}

/// The pipelined run: throughput measured here against what stageprof's
/// pipeline model predicts, and the reconstruction checked.
fn pipelined(args: &DemoArgs, out: PathBuf) -> Result<(), String> {
    let pipeline = pipeline_config(args, args.depth_batch)?;
    let rig = Rig::new(pipeline.views, pipeline.width, pipeline.height);
    let costs = args.stage_cost.iter().fold(StageCosts::default(), |c, &s| c.with(s));
    for &(stage, factor) in &args.stage_cost {
        eprintln!("demo: {} does {factor} times its work", STAGES[stage]);
    }
    let (run, report) =
        profile_pipelined(profile_config(out)?, &pipeline, &rig, args.frames as usize, &costs, &Placement::Free);
    let summary = report.summary.as_ref();
    if let Some(s) = summary {
        print_table(args, s, &report.files);
    }
    let model = summary.as_ref().and_then(|s| s.pipeline.as_ref());
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    eprintln!(
        "demo: pipelined, {} frames: {} frames/s leaving the last stage (measured by the demo); stageprof's model predicts {} frames/s; limiting stage: {}",
        args.frames,
        fmt(run.frames_per_s),
        fmt(model.and_then(|m| m.predicted_per_s)),
        model.and_then(|m| m.limiting_stage.map(|i| m.stages[i].thread.clone())).unwrap_or_else(|| "-".into()),
    );
    eprintln!("demo: {} of {} frames computed by every stage, checked", run.checked, args.frames);
    check(&run.worst.ok_or("no frame was reconstructed")?)
}

/// Throughput and memory per depth batch size, the best size, and where memory grows without speed.
fn sweep_table(rows: &[(u32, f64, u64, u64)]) -> String {
    let mut text = String::from(
        "depth-batch sweep:\n  batch   frames/s   depth_estimation time   depth_estimation memory peak (all threads)\n",
    );
    for (b, fps, mem, wall) in rows {
        text.push_str(&format!(
            "  {b:>5}   {fps:>8.2}   {:>21.1} ms   {:>24.1} MiB\n",
            *wall as f64 / 1e6,
            *mem as f64 / 1048576.0
        ));
    }
    let Some(best) = rows.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else { return text };
    text.push_str(&format!("best batch size: {} ({:.2} frames/s)\n", best.0, best.1));
    // Past the smallest size within 5% of the best throughput, more memory buys no speed.
    let mut sorted: Vec<_> = rows.to_vec();
    sorted.sort_by_key(|r| r.0);
    if let Some(enough) = sorted.iter().find(|r| r.1 >= 0.95 * best.1) {
        if sorted.iter().any(|r| r.0 > enough.0 && r.2 > enough.2) {
            text.push_str(&format!(
                "past batch size {}, memory grows ({:.1} MiB there) without a speed gain of more than 5%\n",
                enough.0,
                enough.2 as f64 / 1048576.0
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconstruction_past_the_bound_fails_loudly() {
        let good = DepthError { points: 100, median_mm: 0.5, p90_mm: 1.0 };
        assert!(check(&good).is_ok());
        for bad in [DepthError { median_mm: 2.5, ..good }, DepthError { p90_mm: 6.0, ..good }] {
            let err = check(&bad).unwrap_err();
            assert!(err.contains("FAILED, a stage is broken"), "{err}");
        }
    }

    #[test]
    fn the_sweep_names_the_best_size_and_where_memory_stops_paying() {
        let rows = [(1, 1.0, 10, 0), (2, 2.0, 20, 0), (4, 2.05, 40, 0), (8, 2.0, 80, 0)];
        let text = sweep_table(&rows);
        assert!(text.contains("best batch size: 4 (2.05 frames/s)"), "{text}");
        assert!(text.contains("past batch size 2, memory grows"), "{text}");
        let flat = sweep_table(&[(1, 1.0, 10, 0), (2, 2.0, 10, 0)]);
        assert!(!flat.contains("memory grows"), "{flat}");
    }

    #[test]
    fn sweep_syntax() {
        assert_eq!(parse_sweep("depth-batch=1,2, 4").unwrap().0, [1, 2, 4]);
        for bad in ["batch=1", "depth-batch=", "depth-batch=0", "depth-batch=1,,2", "depth-batch=99"] {
            assert!(parse_sweep(bad).is_err(), "{bad}");
        }
    }
}
