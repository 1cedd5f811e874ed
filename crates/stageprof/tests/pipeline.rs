//! A pipeline of three threads joined by queues, its middle stage made slow
//! on purpose: the report names it as the stage that limits throughput,
//! with its input full and its output empty most of the time, and the
//! throughput it predicts for that stage made 50% faster matches a second
//! run where it is.

use std::thread;
use std::time::Duration;

use stageprof::{Config, Format, Summary};

const ITEMS: u32 = 40;

/// Runs source -> raw -> model (working `work` an item) -> features -> sink.
fn run(dir: &std::path::Path, work: Duration) -> Summary {
    let session =
        stageprof::init_with(Config { output_dir: dir.into(), formats: vec![Format::Summary], ..Config::default() });
    let (raw_tx, raw_rx) = stageprof::queue::bounded::<u32>("raw", 2);
    let (out_tx, out_rx) = stageprof::queue::bounded::<u32>("features", 2);
    let named = |name: &str| thread::Builder::new().name(name.into());
    let source = named("source")
        .spawn(move || {
            for i in 0..ITEMS {
                raw_tx.send(i).unwrap();
            }
        })
        .unwrap();
    let model = named("model")
        .spawn(move || {
            for i in raw_rx.iter() {
                // Sleeping, so that a loaded machine stretches it little (spinning competes for the CPU).
                thread::sleep(work);
                out_tx.send(i * 2).unwrap();
            }
        })
        .unwrap();
    let sink = named("sink").spawn(move || out_rx.iter().map(u64::from).sum::<u64>()).unwrap();
    source.join().unwrap();
    model.join().unwrap();
    assert_eq!(sink.join().unwrap(), 2 * (0..u64::from(ITEMS)).sum::<u64>(), "every item once");
    session.finish().summary.expect("a summary")
}

#[test]
fn the_slow_stage_is_named_and_its_speed_up_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), Duration::from_millis(8));
    let limit = summary.limiting_stage().expect("a limiting stage");
    assert_eq!(limit.stage.thread, "model");
    assert!(limit.stage.busy_pct > 90.0, "{limit:?}");
    // Its input refills and its output drains as soon as the threads beside it
    // get the CPU: most of the time, less on a loaded machine.
    assert!(limit.inputs_full_pct.unwrap() > 25.0 && limit.outputs_empty_pct.unwrap() > 25.0, "{limit:?}");
    let pipeline = summary.pipeline.as_ref().unwrap();
    let stage = |name: &str| pipeline.stages.iter().position(|s| s.thread == name).unwrap();
    let (model, source, sink) = (stage("model"), stage("source"), stage("sink"));
    assert!(pipeline.stages[source].busy_pct < 20.0 && pipeline.stages[sink].busy_pct < 20.0, "{pipeline:?}");
    let io = |i: usize| (pipeline.stages[i].inputs.clone(), pipeline.stages[i].outputs.clone());
    assert_eq!(io(model), (vec!["raw".to_string()], vec!["features".to_string()]));
    assert_eq!(pipeline.stages[model].items, u64::from(ITEMS));
    // The model's prediction of this run agrees with what it measured.
    let (measured, predicted) = (pipeline.measured_per_s.unwrap(), pipeline.predicted_per_s.unwrap());
    assert!((predicted / measured - 1.0).abs() < 0.1, "predicted {predicted}/s, measured {measured}/s");

    // The model made 50% faster, really: the prediction holds within 10%.
    let half = pipeline.speedups.iter().find(|s| s.stage == model && s.faster_pct == 50).unwrap();
    let faster = run(dir.path(), Duration::from_millis(4));
    let measured = faster.pipeline.as_ref().unwrap().measured_per_s.unwrap();
    let predicted = half.throughput_per_s;
    assert!(
        (predicted / measured - 1.0).abs() < 0.1,
        "predicted {predicted}/s, measured {measured}/s at half the work"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["pipeline"]["limiting_stage"]["thread"], "model");
    let table = stageprof_render::render_table(&summary, stageprof_render::TableOptions { color: false, width: None });
    assert!(table.contains("pipeline: limited by model (busy "), "{table}");
    #[cfg(feature = "html")]
    {
        let html = stageprof_render::render_html(&summary);
        assert!(html.contains("<section id=\"queues\">") && html.contains("Limited by <b>model</b>"));
    }
}
