//! What memory tracking costs: TrackingAllocator against the system
//! allocator it wraps (per allocation + free pair), and a stage with memory
//! figures on. `cargo bench -p stageprof --bench allocator`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use stageprof::{Config, Format, TrackingAllocator};

#[global_allocator]
static GLOBAL: TrackingAllocator = TrackingAllocator::system();

static TRACKING: TrackingAllocator = TrackingAllocator::system();

fn pair(a: &impl GlobalAlloc, layout: Layout) {
    // SAFETY: `layout` has a non-zero size; the pointer is freed with the
    // same allocator and layout it was allocated with, and only if non-null.
    unsafe {
        let p = a.alloc(black_box(layout));
        if !p.is_null() {
            a.dealloc(black_box(p), layout);
        }
    }
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc+free");
    for size in [64usize, 4096] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        g.bench_function(format!("system {size} B"), |b| b.iter(|| pair(&System, layout)));
        g.bench_function(format!("TrackingAllocator {size} B"), |b| b.iter(|| pair(&TRACKING, layout)));
    }
    g.finish();
}

fn stage_with_memory(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config =
        Config { output_dir: dir.path().into(), formats: vec![Format::Summary], rss_sample_ms: 0, ..Config::default() };
    let session = stageprof::init_with(Config { memory: false, ..config.clone() });
    let mut g = c.benchmark_group("stage");
    g.bench_function("stageprof scope! (on, memory off)", |b| {
        b.iter(|| {
            let _s = stageprof::scope!("bench");
        })
    });
    drop(session);
    let session = stageprof::init_with(config);
    g.bench_function("stageprof scope! (on, memory on)", |b| {
        b.iter(|| {
            let _s = stageprof::scope!("bench");
        })
    });
    drop(session);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = alloc_free, stage_with_memory
}
criterion_main!(benches);
