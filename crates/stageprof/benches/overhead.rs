//! Cost of one stage (begin + end), side by side with the tools people use
//! today, in one run: `cargo bench -p stageprof --bench overhead`.
//!
//! Every contender records for real: stageprof's collector runs, puffin
//! closes a frame every 1024 scopes (as a frame loop would), tracing-chrome
//! writes its JSON file. Numbers go to docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use stageprof::{Config, Format};

fn bench_config(dir: &std::path::Path) -> Config {
    Config { output_dir: dir.to_path_buf(), formats: vec![Format::Summary], rss_sample_ms: 0, ..Config::default() }
}

fn stageprof_stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("stage");

    let session = stageprof::init_with(bench_config(dir.path()));
    g.bench_function("stageprof scope! (on)", |b| {
        b.iter(|| {
            let _s = stageprof::scope!("bench");
        })
    });
    g.bench_function("stageprof stage(&str) (on)", |b| {
        b.iter(|| {
            let _s = stageprof::stage(black_box("bench dynamic"));
        })
    });
    stageprof::set_enabled(false);
    g.bench_function("stageprof scope! (off)", |b| {
        b.iter(|| {
            let _s = stageprof::scope!("bench");
        })
    });
    drop(session);

    let session = stageprof::init_with(Config { cpu_time: true, ..bench_config(dir.path()) });
    g.bench_function("stageprof scope! (on, cpu_time)", |b| {
        b.iter(|| {
            let _s = stageprof::scope!("bench");
        })
    });
    drop(session);

    puffin::set_scopes_on(true);
    g.bench_function("puffin 0.20 profile_scope!", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                {
                    puffin::profile_scope!("bench");
                }
                if i % 1024 == 1023 {
                    puffin::GlobalProfiler::lock().new_frame();
                }
            }
            start.elapsed()
        })
    });
    puffin::set_scopes_on(false);

    let trace = dir.path().join("tracing-chrome.json");
    let (chrome_layer, guard) = tracing_chrome::ChromeLayerBuilder::new().file(&trace).build();
    use tracing_subscriber::prelude::*;
    let subscriber = tracing_subscriber::registry().with(chrome_layer);
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tracing 0.1 + tracing-chrome 0.7 span", |b| {
            b.iter(|| {
                let _s = tracing::info_span!("bench").entered();
            })
        });
    });
    drop(guard);

    g.bench_function("floor: one rdtsc", |b| {
        // SAFETY: RDTSC exists on every x86_64 CPU and only reads a counter.
        b.iter(|| black_box(unsafe { core::arch::x86_64::_rdtsc() }))
    });
    g.bench_function("floor: Instant::now", |b| b.iter(|| black_box(Instant::now())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = stageprof_stages
}
criterion_main!(benches);
