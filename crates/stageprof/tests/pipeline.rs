//! A pipeline of three threads joined by queues, one stage made slow on
//! purpose: the report names it as the stage that limits throughput, with
//! the queues beside it as evidence, and the throughput it predicts for the
//! slow stage at half and at twice its work matches runs where it is,
//! measured by the test's own clock at the sink.

use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use stageprof::{Config, Format, Summary};

const ITEMS: u32 = 40;

/// How long each stage works on an item (sleeping, so that a loaded
/// machine stretches it little: spinning would compete for the CPU).
#[derive(Clone, Copy)]
struct Work {
    source: Duration,
    model: Duration,
    raw_capacity: usize,
    /// The source makes items in bursts: after every `burst` items it pauses this long.
    burst: Option<(u32, Duration)>,
    /// Threads sharing the model's job (`model-0`, `model-1`, ... when more than one).
    model_workers: usize,
}

const SLOW_MODEL: Work =
    Work { source: Duration::ZERO, model: Duration::from_millis(8), raw_capacity: 2, burst: None, model_workers: 1 };

/// What a run gave: stageprof's summary, and by the test's own clock the
/// items a second the sink received (first to last) and each item's time
/// from the start of its send into `raw` to its arrival at the sink.
struct Run {
    summary: Summary,
    sink_rate: f64,
    latencies: Vec<Duration>,
}

/// Runs source -> raw -> model -> features -> sink.
fn run(dir: &std::path::Path, work: Work) -> Run {
    // One session a process at a time: the tests take turns.
    static ONE_SESSION: Mutex<()> = Mutex::new(());
    let _turn = ONE_SESSION.lock().unwrap_or_else(PoisonError::into_inner);
    let session =
        stageprof::init_with(Config { output_dir: dir.into(), formats: vec![Format::Summary], ..Config::default() });
    let (raw_tx, raw_rx) = stageprof::queue::bounded::<u32>("raw", work.raw_capacity);
    let (out_tx, out_rx) = stageprof::queue::bounded::<u32>("features", 2);
    let named = |name: &str| thread::Builder::new().name(name.into());
    let source = named("source")
        .spawn(move || {
            let mut sent = Vec::new();
            for i in 0..ITEMS {
                thread::sleep(work.source);
                if let Some((_, pause)) = work.burst.filter(|&(burst, _)| i % burst == burst - 1) {
                    thread::sleep(pause);
                }
                sent.push(Instant::now());
                raw_tx.send(i).unwrap();
            }
            sent
        })
        .unwrap();
    let models: Vec<_> = (0..work.model_workers)
        .map(|i| {
            let (raw_rx, out_tx) = (raw_rx.clone(), out_tx.clone());
            let name = if work.model_workers == 1 { "model".to_owned() } else { format!("model-{i}") };
            named(&name)
                .spawn(move || {
                    for i in raw_rx.iter() {
                        thread::sleep(work.model);
                        out_tx.send(i * 2).unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    drop((raw_rx, out_tx));
    let sink =
        named("sink").spawn(move || out_rx.iter().map(|i| (u64::from(i), Instant::now())).collect::<Vec<_>>()).unwrap();
    let sent = source.join().unwrap();
    models.into_iter().for_each(|m| m.join().unwrap());
    let received = sink.join().unwrap();
    // Every item once (several workers may pass them on out of order).
    let mut items: Vec<u64> = received.iter().map(|r| r.0).collect();
    items.sort_unstable();
    assert_eq!(items, (0..u64::from(ITEMS)).map(|i| 2 * i).collect::<Vec<_>>());
    let seconds = received.last().unwrap().1.duration_since(received[0].1).as_secs_f64();
    let latencies = received.iter().map(|&(i, at)| at.duration_since(sent[i as usize / 2])).collect();
    Run {
        summary: session.finish().summary.expect("a summary"),
        sink_rate: (received.len() - 1) as f64 / seconds,
        latencies,
    }
}

fn stage(summary: &Summary, name: &str) -> usize {
    summary.pipeline.as_ref().unwrap().stages.iter().position(|s| s.thread == name).unwrap()
}

#[test]
fn the_slow_stage_is_named_and_its_speed_up_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let Run { summary, sink_rate, .. } = run(dir.path(), SLOW_MODEL);
    let limit = summary.limiting_stage().expect("a limiting stage");
    assert_eq!(limit.stage.thread, "model");
    assert!(limit.stage.busy_pct > 90.0, "{limit:?}");
    // Its input refills and its output drains as soon as the threads beside it
    // get the CPU: most of the time, less on a loaded machine.
    assert!(limit.inputs_full_pct.unwrap() > 25.0 && limit.outputs_empty_pct.unwrap() > 25.0, "{limit:?}");
    let pipeline = summary.pipeline.as_ref().unwrap();
    let (model, source, sink) = (stage(&summary, "model"), stage(&summary, "source"), stage(&summary, "sink"));
    assert!(pipeline.stages[source].busy_pct < 20.0 && pipeline.stages[sink].busy_pct < 20.0, "{pipeline:?}");
    let io = |i: usize| (pipeline.stages[i].inputs.clone(), pipeline.stages[i].outputs.clone());
    assert_eq!(io(model), (vec!["raw".to_string()], vec!["features".to_string()]));
    assert_eq!(pipeline.stages[model].items, u64::from(ITEMS));
    assert!(pipeline.undersized_queues.is_empty(), "only the source waits on raw: {pipeline:?}");
    // The prediction of this run agrees with the rate the sink saw.
    let predicted = pipeline.predicted_per_s.unwrap();
    assert!((predicted / sink_rate - 1.0).abs() < 0.1, "predicted {predicted}/s, the sink saw {sink_rate}/s");

    // The model at half and at twice its work, really: the predictions hold within 10%.
    let half = pipeline.speedups.iter().find(|s| s.stage == model && s.faster_pct == 50).unwrap();
    assert_eq!(Some(half.throughput_per_s), pipeline.predicted_with(model, 0.5));
    for factor in [0.5, 2.0] {
        let work = Work { model: SLOW_MODEL.model.mul_f64(factor), ..SLOW_MODEL };
        let Run { sink_rate, latencies, .. } = run(dir.path(), work);
        let predicted = pipeline.predicted_with(model, factor).unwrap();
        assert!(
            (predicted / sink_rate - 1.0).abs() < 0.1,
            "model x{factor}: predicted {predicted}/s, the sink saw {sink_rate}/s"
        );
        // The latency too, against the mean of the test's own: the items
        // in the pipeline stay as many (raw full, the source blocked with one).
        let mean = latencies.iter().sum::<Duration>().as_nanos() as f64 / latencies.len() as f64;
        let predicted = pipeline.predicted_latency_with(model, factor).unwrap();
        assert!(
            (predicted / mean - 1.0).abs() < 0.15,
            "model x{factor}: latency predicted {predicted} ns, seen {mean} ns"
        );
    }
    let Run { summary, mut latencies, .. } = run(dir.path(), SLOW_MODEL);

    // End-to-end latency: each item's age at the sink, against the test's own clock
    // (the start of the send into raw to the sink's receive), percentiles by nearest rank.
    let latency = summary.pipeline.as_ref().unwrap().latency.expect("a latency");
    latencies.sort();
    let rank = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1].as_nanos() as f64;
    assert_eq!(latency.count, u64::from(ITEMS));
    for (mine, truth) in [(latency.p50_ns, rank(0.5)), (latency.p95_ns, rank(0.95)), (latency.max_ns, rank(1.0))] {
        assert!(
            (mine as f64 - truth).abs() < 0.02 * truth + 300_000.0,
            "latency {mine} ns, by the test's clock {truth} ns"
        );
    }
    let model_stage = &summary.pipeline.as_ref().unwrap().stages[stage(&summary, "model")];
    assert_eq!(model_stage.item_age.map(|a| a.count), Some(u64::from(ITEMS)), "the model received every item, aged");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["pipeline"]["limiting_stage"]["thread"], "model");
    assert_eq!(json["pipeline"]["latency"]["p50_ns"], latency.p50_ns);
    let table = stageprof_render::render_table(&summary, &stageprof_render::TableOptions::plain());
    assert!(table.contains("pipeline: limited by model (busy "), "{table}");
    assert!(
        table.contains("pipeline latency (an item's time from the first queue to the last stage): p50 "),
        "{table}"
    );
    #[cfg(feature = "html")]
    {
        let html = stageprof_render::render_html(&summary);
        assert!(html.contains("<section id=\"queues\">") && html.contains("Limited by <b>model</b>"));
        // The diagram: source, then raw, then the model marked as the limit, then features, then the sink.
        let order =
            ["<b>source</b>", "&rarr; raw", "class=\"stage limit\"><b>model</b>", "&rarr; features", "<b>sink</b>"];
        let at: Vec<usize> = order.iter().map(|p| html.find(p).unwrap_or_else(|| panic!("{p} in the HTML"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(html.contains("<h3>Queue raw over time (capacity 2)</h3>"));
    }
}

#[test]
fn a_slow_source_starves_the_stages_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = Work { source: Duration::from_millis(8), model: Duration::ZERO, ..SLOW_MODEL };
    let Run { summary, sink_rate, .. } = run(dir.path(), work);
    let limit = summary.limiting_stage().expect("a limiting stage");
    assert_eq!(limit.stage.thread, "source", "{limit:?}");
    assert!(limit.outputs_empty_pct.unwrap() > 50.0, "{limit:?}");
    let raw = summary.queues.iter().find(|q| q.name == "raw").unwrap();
    assert!(raw.full_pct.unwrap() < 10.0 && raw.sender_blocked_ns < raw.receiver_waited_ns / 10, "{raw:?}");
    let predicted = summary.pipeline.as_ref().unwrap().predicted_per_s.unwrap();
    assert!((predicted / sink_rate - 1.0).abs() < 0.1, "predicted {predicted}/s, the sink saw {sink_rate}/s");
}

#[test]
fn a_source_done_early_is_not_the_limit() {
    // The queue after the source holds every item: the source makes them all at
    // once and is busy all its short life; the model, slower, limits the run.
    let dir = tempfile::tempdir().unwrap();
    let work = Work {
        source: Duration::from_millis(1),
        model: Duration::from_millis(6),
        raw_capacity: ITEMS as usize,
        ..SLOW_MODEL
    };
    let Run { summary, .. } = run(dir.path(), work);
    let pipeline = summary.pipeline.as_ref().unwrap();
    assert_eq!(summary.limiting_stage().unwrap().stage.thread, "model", "{pipeline:?}");
    assert!(pipeline.stages[stage(&summary, "source")].busy_pct < 30.0, "{pipeline:?}");
}

#[test]
fn a_queue_too_small_for_a_bursty_source_is_named() {
    // Bursts of 4 items 1 ms apart, then 24 ms of pause (7 ms an item on average);
    // the model takes 6 ms an item. With room for one item the two take turns
    // waiting; with room for the whole run the queue absorbs the bursts.
    let dir = tempfile::tempdir().unwrap();
    let bursty = Work {
        source: Duration::from_millis(1),
        model: Duration::from_millis(6),
        raw_capacity: 1,
        burst: Some((4, Duration::from_millis(24))),
        model_workers: 1,
    };
    let Run { summary: small, sink_rate: small_rate, .. } = run(dir.path(), bursty);
    let pipeline = small.pipeline.as_ref().unwrap();
    let names: Vec<&str> = pipeline.undersized_queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["raw"], "{pipeline:?}");
    let raw = &pipeline.undersized_queues[0];
    assert_eq!(raw.capacity, 1);
    assert!(raw.sender_blocked_pct >= 10.0 && raw.receiver_waited_pct >= 10.0, "{raw:?}");
    let table = stageprof_render::render_table(&small, &stageprof_render::TableOptions::plain());
    assert!(table.contains("queue raw (capacity 1) looks too small"), "{table}");

    let Run { summary: large, sink_rate: large_rate, .. } =
        run(dir.path(), Work { raw_capacity: ITEMS as usize, ..bursty });
    let pipeline = large.pipeline.as_ref().unwrap();
    assert!(pipeline.undersized_queues.is_empty(), "{pipeline:?}");
    assert!(large_rate > small_rate * 1.15, "a larger queue is faster: {large_rate}/s against {small_rate}/s");
}

#[test]
fn workers_sharing_a_job_are_one_stage_of_that_many() {
    // Three model threads on one queue: a stage with three workers, three
    // times the capacity of one; still the limit (a model takes 12 ms, so
    // 4 ms an item among three, against the source's nothing).
    let dir = tempfile::tempdir().unwrap();
    let work = Work { model: Duration::from_millis(12), model_workers: 3, raw_capacity: 4, ..SLOW_MODEL };
    let Run { summary, sink_rate, .. } = run(dir.path(), work);
    let pipeline = summary.pipeline.as_ref().unwrap();
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.thread.as_str()).collect();
    assert_eq!(names, ["model (3 workers)", "sink", "source"]);
    let model = &pipeline.stages[0];
    assert_eq!((model.workers, model.items), (3, u64::from(ITEMS)));
    assert_eq!(summary.limiting_stage().unwrap().stage.thread, "model (3 workers)");
    let predicted = pipeline.predicted_per_s.unwrap();
    assert!((predicted / sink_rate - 1.0).abs() < 0.1, "predicted {predicted}/s, the sink saw {sink_rate}/s");
    let doubled = pipeline.predicted_with(0, 0.5).unwrap();
    assert!((doubled / predicted - 2.0).abs() < 0.01, "the source is not a limit at twice the model's speed");
}
