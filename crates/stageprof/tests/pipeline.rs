//! A pipeline of three threads joined by queues, with its middle stage made
//! slow on purpose: the report names it as the stage that limits throughput,
//! with its input full and its output empty most of the time.

use std::thread;
use std::time::Duration;

use stageprof::{Config, Format};

#[test]
fn the_slow_stage_is_named_as_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let session = stageprof::init_with(Config {
        output_dir: dir.path().into(),
        formats: vec![Format::Summary],
        ..Config::default()
    });
    let (raw_tx, raw_rx) = stageprof::queue::bounded::<u32>("raw", 2);
    let (out_tx, out_rx) = stageprof::queue::bounded::<u32>("features", 2);
    let named = |name: &str| thread::Builder::new().name(name.into());
    let source = named("source")
        .spawn(move || {
            for i in 0..40 {
                raw_tx.send(i).unwrap();
            }
        })
        .unwrap();
    let model = named("model")
        .spawn(move || {
            for i in raw_rx.iter() {
                thread::sleep(Duration::from_millis(3));
                out_tx.send(i * 2).unwrap();
            }
        })
        .unwrap();
    let sink = named("sink").spawn(move || out_rx.iter().map(u64::from).sum::<u64>()).unwrap();
    source.join().unwrap();
    model.join().unwrap();
    assert_eq!(sink.join().unwrap(), 2 * (0..40).sum::<u64>(), "every item once");

    let summary = session.finish().summary.expect("a summary");
    let limit = summary.limiting_stage().expect("a limiting stage");
    assert_eq!(limit.stage.thread, "model");
    assert!(limit.stage.busy_pct > 90.0, "{limit:?}");
    assert!(limit.inputs_full_pct.unwrap() > 50.0 && limit.outputs_empty_pct.unwrap() > 50.0, "{limit:?}");
    let pipeline = summary.pipeline.as_ref().unwrap();
    let stage = |name: &str| pipeline.stages.iter().find(|s| s.thread == name).unwrap();
    assert!(stage("source").busy_pct < 20.0 && stage("sink").busy_pct < 20.0, "{pipeline:?}");
    assert_eq!(
        (stage("model").inputs.as_slice(), stage("model").outputs.as_slice()),
        (&["raw".to_string()][..], &["features".to_string()][..])
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["pipeline"]["limiting_stage"]["thread"], "model");
    let table = stageprof_render::render_table(&summary, stageprof_render::TableOptions { color: false, width: None });
    assert!(table.contains("pipeline: limited by model (busy "), "{table}");
}
