//! A fixed sequence of frames, nested stages, an unwound stage and counters,
//! written to the directory given: the Python test suite runs the same
//! sequence from Python and compares the two summaries
//! (python/tests/test_rust_parity.py).
//!
//! `cargo run -p stageprof --example stage_sequence -- OUT_DIR`

use stageprof::{Config, Format, Profiler};

fn main() {
    let out = std::env::args().nth(1).expect("usage: stage_sequence OUT_DIR");
    let p = Profiler::start(Config {
        output_dir: out.into(),
        formats: vec![Format::Summary, Format::Native],
        ..Config::default()
    });
    for frame in 0..3 {
        let _f = p.frame();
        {
            let _load = p.stage("load");
            for _ in 0..2 {
                let _d = p.stage("decode");
            }
        }
        {
            let _step = p.stage("step");
            let _inner = p.stage("forward");
        }
        p.counter("queue", f64::from(frame) * 2.0);
    }
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _s = p.stage("failing");
        panic!("a stage left by a panic");
    }));
    assert!(failed.is_err());
    p.finish();
}
