//! The recorder against ground truth: exact counts, known allocations,
//! hostile names, panics, bad output paths, full buffers.

use std::path::Path;
use std::sync::{Arc, Barrier};

use serde_json::Value;
use stageprof::{Config, Format, Profiler, Summary};

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

fn config(dir: &Path) -> Config {
    Config {
        output_dir: dir.to_path_buf(),
        formats: Format::DEFAULT.iter().copied().filter(|&f| f != Format::Table).collect(),
        ..Config::default()
    }
}

fn stage<'a>(s: &'a Summary, path: &str) -> &'a stageprof_analysis::StageStats {
    s.stages.iter().find(|st| st.path.join("/") == path).unwrap_or_else(|| panic!("no stage {path}"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn nested_stages_are_counted_exactly_and_agree_with_the_native_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(config(dir.path()));
    for _ in 0..1000 {
        let _outer = p.stage("outer");
        for _ in 0..3 {
            let _inner = p.stage("inner");
        }
    }
    let report = p.finish();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let s = report.summary.unwrap();
    let outer = stage(&s, "outer");
    let inner = stage(&s, "outer/inner");
    assert_eq!((outer.calls, inner.calls), (1000, 3000));
    assert_eq!(outer.depth + 1, inner.depth);
    assert_eq!(outer.self_ns + inner.wall_ns, outer.wall_ns);
    assert!(outer.call.min_ns <= outer.call.p50_ns && outer.call.p50_ns <= outer.call.max_ns);
    assert_eq!(s.run.dropped_records, 0);

    // `stageprof report` reads the same numbers back from the native file.
    let mut agg = stageprof_analysis::Aggregator::default();
    let file = std::fs::File::open(dir.path().join("profile.stgp")).unwrap();
    let native = stageprof_model::ingest::read_native(std::io::BufReader::new(file), &mut agg).unwrap();
    let again = agg.summary(&native.catalog, native.run, 3);
    assert_eq!(again.stages, s.stages);
    assert_eq!(again.run.end_reason, "finish");

    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(summary["stages"][0]["name"], "outer");
    assert_eq!(summary["stages"][1]["path"], serde_json::json!(["outer", "inner"]));
    assert_eq!(summary["stages"][1]["calls"], 3000);
    let trace = json(&dir.path().join("trace.json"));
    let spans = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count();
    assert_eq!(spans, 4000);
}

#[test]
fn host_memory_of_known_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(config(dir.path()));
    // Warm this thread's writer so its setup allocations fall outside the stages.
    drop(p.stage("warm"));
    let kept;
    {
        let _s = p.stage("transient");
        let v = std::hint::black_box(vec![1u8; 1 << 20]);
        drop(v);
    }
    {
        let _s = p.stage("retain");
        kept = std::hint::black_box(vec![7u64; 1000]);
        let scratch = std::hint::black_box(vec![0u8; 4096]);
        drop(scratch);
    }
    {
        let _outer = p.stage("outer");
        let a = std::hint::black_box(vec![0u8; 3000]);
        {
            let _inner = p.stage("inner");
            let b = std::hint::black_box(vec![0u8; 5000]);
            drop(b);
        }
        drop(a);
    }
    let s = p.finish().summary.unwrap();
    assert!(s.run.memory_tracked);
    let t = stage(&s, "transient");
    assert_eq!(
        (t.allocs, t.alloc_bytes, t.host_mem_peak_bytes, t.host_mem_net_bytes),
        (Some(1), Some(1 << 20), Some(1 << 20), Some(0))
    );
    let r = stage(&s, "retain");
    assert_eq!(
        (r.allocs, r.alloc_bytes, r.host_mem_peak_bytes, r.host_mem_net_bytes),
        (Some(2), Some(12096), Some(12096), Some(8000))
    );
    let o = stage(&s, "outer");
    assert_eq!((o.allocs, o.host_mem_peak_bytes, o.host_mem_net_bytes), (Some(2), Some(8000), Some(0)));
    let i = stage(&s, "outer/inner");
    assert_eq!((i.allocs, i.host_mem_peak_bytes), (Some(1), Some(5000)));
    drop(kept);
}

#[test]
fn many_threads_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB holds all 800k stages even if the collector gets no CPU until the end.
    let p = Profiler::start(Config { buffer_mb: 64, ..config(dir.path()) });
    let per_thread = 100_000;
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    let _s = p.stage("work");
                }
            });
        }
    });
    let s = p.finish().summary.unwrap();
    let w = stage(&s, "work");
    assert_eq!(s.run.dropped_records, 0);
    assert_eq!(w.calls, 8 * per_thread);
    assert_eq!(w.threads, 8);
    assert_eq!(w.unfinished, 0);
}

/// Each thread's share of a stage's wall time, against the time each
/// thread measured around its own calls.
#[test]
fn wall_time_is_split_by_the_thread_that_ran_the_calls() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(config(dir.path()));
    let measured: Vec<(String, Duration, Duration)> = std::thread::scope(|scope| {
        let workers: Vec<_> = [("short", 1), ("long", 3)]
            .into_iter()
            .map(|(name, ms)| {
                let p = &p;
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn_scoped(scope, move || {
                        let (mut inside, mut around) = (Duration::ZERO, Duration::ZERO);
                        for _ in 0..5 {
                            let outer = Instant::now();
                            let _s = p.stage("sleep");
                            let inner = Instant::now();
                            std::thread::sleep(Duration::from_millis(ms));
                            inside += inner.elapsed();
                            drop(_s);
                            around += outer.elapsed();
                        }
                        (name.to_owned(), inside, around)
                    })
                    .unwrap()
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let s = p.finish().summary.unwrap();
    let st = stage(&s, "sleep");
    assert_eq!(st.wall_by_thread.len(), 2);
    for (name, inside, around) in measured {
        let ours = st.wall_by_thread.iter().find(|t| t.thread == name).unwrap_or_else(|| panic!("no thread {name}"));
        let ns = Duration::from_nanos(ours.wall_ns);
        assert!(inside <= ns && ns <= around, "{name}: {ns:?} outside {inside:?}..{around:?}");
    }
    assert_eq!(st.wall_by_thread.iter().map(|t| t.wall_ns).sum::<u64>(), st.wall_ns);
}

#[test]
fn stages_inside_a_rayon_pool_are_counted_per_worker() {
    use rayon::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(config(dir.path()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    let sum: u64 = pool.install(|| {
        (0..10_000u64)
            .into_par_iter()
            .map(|i| {
                let _s = p.stage("item");
                let _inner = p.stage("square");
                i * i
            })
            .sum()
    });
    assert_eq!(sum, (0..10_000u64).map(|i| i * i).sum::<u64>());
    let s = p.finish().summary.unwrap();
    assert_eq!(stage(&s, "item").calls, 10_000);
    assert_eq!(stage(&s, "item/square").calls, 10_000);
    assert!(stage(&s, "item").threads >= 1 && stage(&s, "item").threads <= 4);
}

#[test]
fn a_full_buffer_drops_and_counts_but_keeps_every_end() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB holds 8 blocks of 128 KiB: the ninth and tenth thread get none.
    let p = Profiler::start(Config { buffer_mb: 1, ..config(dir.path()) });
    let started = Arc::new(Barrier::new(10));
    let release = Arc::new(Barrier::new(10));
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (started, release, p) = (started.clone(), release.clone(), &p);
                scope.spawn(move || {
                    let s = p.stage("held");
                    let recorded = s.is_recording();
                    started.wait();
                    release.wait();
                    drop(s);
                    recorded
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| **r).count(), 8);
    let s = p.finish().summary.unwrap();
    assert_eq!(s.run.dropped_records, 2);
    assert_eq!(stage(&s, "held").calls, 8);
    assert_eq!(stage(&s, "held").unfinished, 0);
}

#[test]
fn frames_sampling_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config { sample_every: 4, ..config(dir.path()) });
    for i in 0..10 {
        let _f = p.frame();
        let _s = p.stage("step");
        p.counter("batch", f64::from(i));
    }
    let s = p.finish().summary.unwrap();
    assert_eq!((s.frames.count, s.frames.sampled), (10, 3));
    assert_eq!(stage(&s, "step").calls, 3);
    let batch = s.counters.iter().find(|c| c.name == "batch").unwrap();
    assert_eq!((batch.samples, batch.min, batch.max, batch.last), (3, 0.0, 8.0, 8.0));
    assert_eq!(s.frames.duration.count, 10);
}

#[test]
fn hostile_names_survive_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(10_000);
    let names =
        ["quote\"d", "back\\slash", "new\nline", "ctrl\u{1}\u{1b}[31m", "ünï©ødé 😀", "</script><b>", long.as_str()];
    let p = Profiler::start(config(dir.path()));
    for n in names {
        let _s = p.stage(n);
    }
    let report = p.finish();
    let s = report.summary.unwrap();
    for n in names {
        assert_eq!(stage(&s, n).calls, 1);
    }
    let summary = json(&dir.path().join("summary.json"));
    let got: Vec<&str> = summary["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for n in names {
        assert!(got.contains(&n), "summary.json lost {n:?}");
    }
    let trace = json(&dir.path().join("trace.json"));
    let traced: Vec<&str> =
        trace["traceEvents"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    for n in names {
        assert!(traced.contains(&n), "trace.json lost {n:?}");
    }
    let table = stageprof_render::render_table(&s, &stageprof_render::TableOptions::plain());
    assert!(table.contains("new\\nline") && table.contains("ctrl\\u{1}\\u{1b}[31m"));
    assert!(!table.contains('\u{1b}'), "a raw escape sequence reached the terminal");
    #[cfg(feature = "html")]
    {
        let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(report.files.contains(&dir.path().join("report.html")));
        assert!(
            page.contains("&lt;/script&gt;&lt;b&gt;") && page.contains("quote&quot;d") && page.contains("ünï©ødé 😀")
        );
        assert_eq!(page.matches("<script").count(), 1, "only the report's own script");
    }
}

#[test]
fn a_panic_inside_a_stage_marks_it_unwound_and_outputs_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(config(dir.path()));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _outer = p.stage("outer");
        let _s = p.stage("explodes");
        panic!("boom");
    }));
    assert!(caught.is_err());
    let s = p.finish().summary.unwrap();
    assert_eq!(stage(&s, "outer/explodes").unwound, 1);
    assert_eq!(stage(&s, "outer").unwound, 1);
    assert_eq!(json(&dir.path().join("summary.json"))["stages"][1]["unwound"], 1);
    json(&dir.path().join("trace.json"));
}

#[test]
fn an_unwritable_output_directory_is_reported_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = blocker.join("out");
    let p = Profiler::start(config(&out));
    for _ in 0..10 {
        let _s = p.stage("still-measured");
    }
    let report = p.finish();
    assert!(report.files.is_empty());
    assert!(report.errors.iter().any(|e| e.contains(&out.display().to_string())), "{:?}", report.errors);
    assert_eq!(stage(report.summary.as_ref().unwrap(), "still-measured").calls, 10);
}

#[test]
fn off_records_nothing_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config { enabled: false, ..config(dir.path()) });
    assert!(!p.stage("x").is_recording());
    let report = p.finish();
    assert!(report.summary.is_none() && report.files.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn run_time_switch_and_cpu_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config { cpu_time: true, ..config(dir.path()) });
    // Ground truth from the same kernel clock, read by the test around the stage.
    let thread_cpu = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is valid and writable for the call.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    let before = thread_cpu();
    {
        let _s = p.stage("spin");
        while thread_cpu() - before < 30_000_000 {
            std::hint::black_box(0);
        }
    }
    let spun = thread_cpu() - before;
    {
        let _s = p.stage("sleep");
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    p.set_enabled(false);
    drop(p.stage("while-off"));
    p.set_enabled(true);
    drop(p.stage("back-on"));
    let s = p.finish().summary.unwrap();
    let spin_cpu = stage(&s, "spin").cpu_ns.unwrap();
    assert!(
        (30_000_000 - 1_000_000..=spun).contains(&spin_cpu),
        "spin: {spin_cpu} ns of CPU, the test measured {spun}"
    );
    assert!(stage(&s, "sleep").cpu_ns.unwrap() < 10_000_000);
    assert!(stage(&s, "sleep").wall_ns >= 30_000_000);
    assert!(s.stages.iter().all(|st| st.name != "while-off"));
    assert_eq!(stage(&s, "back-on").calls, 1);
}
