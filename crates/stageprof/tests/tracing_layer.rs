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
