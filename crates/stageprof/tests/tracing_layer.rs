//! `#[tracing::instrument]` spans become stages through the Layer.
#![cfg(feature = "tracing")]

use stageprof::tracing_layer::StageLayer;
use stageprof::{Config, Format, Profiler};
use tracing_subscriber::prelude::*;

#[tracing::instrument]
fn decode(frames: u32) {
    for _ in 0..frames {
        convert();
    }
}

#[tracing::instrument]
fn convert() {}

#[test]
fn instrumented_functions_become_nested_stages() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Summary],
        ..Config::default()
    });
    let subscriber = tracing_subscriber::registry().with(StageLayer::new(p.clone()));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..5 {
            decode(3);
        }
    });
    let s = p.finish().summary.unwrap();
    let calls: Vec<(String, u64)> = s.stages.iter().map(|st| (st.path.join("/"), st.calls)).collect();
    assert_eq!(calls, vec![("decode".to_string(), 5), ("decode/convert".to_string(), 15)]);
}

/// Works for 200 µs without yielding.
fn spin_200us() {
    let until = std::time::Instant::now() + std::time::Duration::from_micros(200);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Each task's lifetime as the task itself measured it (from its first
/// poll to its return), in nanoseconds.
static LIFETIMES: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

#[tracing::instrument]
async fn fetch(i: u32) {
    let born = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    spin_200us();
    LIFETIMES.lock().unwrap().push(born.elapsed().as_nanos() as u64);
}

#[tracing::instrument]
async fn batch() {
    use tracing::Instrument;
    // `in_current_span`: the spawned task keeps `batch` as its tracing parent.
    let tasks: Vec<_> = (0..50).map(|i| tokio::spawn(fetch(i).in_current_span())).collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn an_async_span_is_one_call_from_creation_to_close_whichever_threads_poll_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Summary],
        ..Config::default()
    });
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(StageLayer::new(p.clone())));
    // An instrumented async fn makes its span at its first poll, on a worker:
    // every worker gets the subscriber, as an application's global one would.
    let for_workers = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&for_workers)))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || runtime.block_on(batch()));
    drop(runtime);
    let s = p.finish().summary.unwrap();
    let stage = |path: &str| s.stages.iter().find(|st| st.path.join("/") == path).unwrap_or_else(|| panic!("{path}"));
    let fetch = stage("batch/fetch");
    assert_eq!(fetch.calls, 50, "one call per task, not one per poll");
    let (wall, busy) = (fetch.call.mean_ns, fetch.busy_ns.unwrap() / fetch.calls);
    let lifetimes = LIFETIMES.lock().unwrap().clone();
    let measured = lifetimes.iter().sum::<u64>() / lifetimes.len() as u64;
    println!(
        "fetch: {} calls, mean lifetime {wall} ns (measured in the tasks {measured} ns), mean busy {busy} ns",
        fetch.calls
    );
    assert_eq!(lifetimes.len(), 50);
    assert!(
        fetch.call.min_ns >= 5_200_000,
        "each lived at least its 5 ms sleep and 0.2 ms of work: {}",
        fetch.call.min_ns
    );
    // The span opens just before the task's body runs and closes just after it returns.
    assert!(wall >= measured && wall - measured < 200_000, "mean lifetime {wall} ns, measured {measured} ns");
    assert!((200_000..2_000_000).contains(&busy), "busy {busy} ns a call: the 0.2 ms of work, not the sleep");
    assert_eq!(fetch.self_ns, fetch.busy_ns.unwrap(), "no child spans: its own time is its busy time");
    let batch = stage("batch");
    assert_eq!(batch.calls, 1);
    assert!(batch.call.max_ns >= fetch.call.max_ns);
    // Its tasks enter it at every poll, so it is busy while they work; its own
    // time leaves theirs out.
    assert!(batch.self_ns < 1_000_000, "batch's own time {} ns", batch.self_ns);
}
