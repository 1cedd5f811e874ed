//! 8 threads x 1M stages each: exact counts, and memory bounded by the
//! configured buffer. `cargo bench -p stageprof --bench threads`.
//!
//! Prints, per buffer size (and with the native file bounded, where the
//! collector sums up every record as it reads): wall time of the recording
//! and of `finish`, stages recorded + dropped (must equal 8M exactly), peak
//! RSS growth over the process before recording.

use std::time::Instant;

use stageprof::{Config, Format, GpuTrace, Profiler};

const THREADS: u64 = 8;
const PER_THREAD: u64 = 1_000_000;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| buffer_mb | max_disk_mb | wall | finish | ns/stage (all threads) | recorded | dropped | recorded+dropped | peak RSS growth |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let cases = [(4u32, None), (16, None), (64, None), (256, None), (256, Some(64u64))];
    for (buffer_mb, max_disk_mb) in cases {
        let dir = tempfile::tempdir().unwrap();
        reset_peak_rss();
        let base = peak_rss_mib();
        let p = Profiler::start(Config {
            output_dir: dir.path().to_path_buf(),
            formats: vec![Format::Native, Format::Summary],
            buffer_mb,
            rss_sample_ms: 0,
            max_disk_mb,
            gpu: GpuTrace::Off,
            ..Config::default()
        });
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        let _s = p.stage("work");
                    }
                });
            }
        });
        let wall = start.elapsed();
        let finishing = Instant::now();
        let summary = p.finish().summary.expect("profiler was on");
        let finish = finishing.elapsed();
        let recorded = summary.stages.iter().find(|s| s.name == "work").map_or(0, |s| s.calls);
        let dropped = summary.run.dropped_records;
        let total = THREADS * PER_THREAD;
        assert_eq!(recorded + dropped, total, "a stage was lost without being counted");
        let bound = max_disk_mb.map_or("-".to_owned(), |mb| mb.to_string());
        println!(
            "| {buffer_mb} | {bound} | {:.2} s | {:.2} s | {:.1} | {recorded} | {dropped} | {} (= {total}) | {:.1} MiB |",
            wall.as_secs_f64(),
            finish.as_secs_f64(),
            wall.as_nanos() as f64 / total as f64,
            recorded + dropped,
            peak_rss_mib() - base
        );
    }
}
