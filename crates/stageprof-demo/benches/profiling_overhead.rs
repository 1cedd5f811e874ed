//! What profiling costs the demo pipeline: the same frames with the profiler
//! on and off, alternating, in one run.
//! `cargo bench -p stageprof-demo --bench profiling_overhead [-- ROUNDS]`

use std::time::Instant;

use stageprof::{Config, Format};
use stageprof_demo::pipeline::{run_frame, PipelineConfig};
use stageprof_demo::scene::Rig;

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

const FRAMES: usize = 3;

/// Seconds for FRAMES frames with the profiler `enabled` or not.
fn timed(enabled: bool, rig: &Rig, pipeline: &PipelineConfig, out: &std::path::Path) -> f64 {
    let session = stageprof::init_with(Config {
        enabled,
        output_dir: out.to_path_buf(),
        formats: vec![Format::Summary, Format::Native, Format::Chrome],
        ..Config::default()
    });
    let start = Instant::now();
    for frame in 0..FRAMES {
        let _f = stageprof::frame();
        let r = run_frame(pipeline, rig, frame);
        assert!(r.error.is_some_and(|e| e.median_mm < 2.0), "reconstruction failed");
    }
    let pipeline_time = start.elapsed().as_secs_f64();
    drop(session);
    pipeline_time
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let pipeline = PipelineConfig::default();
    let rig = Rig::new(pipeline.views, pipeline.width, pipeline.height);
    let dir = tempfile::tempdir().unwrap();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    timed(false, &rig, &pipeline, dir.path()); // warm-up
    for round in 0..rounds {
        // Alternate which goes first, so drift on the machine hits both alike.
        let (a, b) = if round % 2 == 0 { (true, false) } else { (false, true) };
        for enabled in [a, b] {
            let t = timed(enabled, &rig, &pipeline, dir.path());
            if enabled {
                on.push(t)
            } else {
                off.push(t)
            }
        }
    }
    let (m_on, m_off) = (median(on.clone()), median(off.clone()));
    println!("demo at defaults, {FRAMES} frames, {rounds} rounds each (seconds, pipeline only):");
    println!("  profiler on : {on:.3?} median {m_on:.3}");
    println!("  profiler off: {off:.3?} median {m_off:.3}");
    println!("overhead: {:+.2}% (median on / median off - 1)", 100.0 * (m_on / m_off - 1.0));
}
