//! The fuzzer's committed corpus (seeds and the inputs that once crashed
//! the reader), replayed in every test run: each is read or refused, never
//! a panic. The fuzzers themselves: fuzz/fuzz_targets/ (`read_records` can
//! write out the native file it makes of an input, for this corpus).

use stageprof_analysis::Aggregator;

#[test]
fn every_corpus_input_is_read_or_refused() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/read_profile");
    let mut seen = 0;
    let mut panicked = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let read = std::panic::catch_unwind(|| {
            let mut agg = Aggregator::default();
            if let Ok(p) = stageprof_readers::read_profile(&bytes[..], &mut agg) {
                let _ = agg.summary(&p.catalog, p.run, 3);
            }
        });
        if read.is_err() {
            panicked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        seen += 1;
    }
    assert!(panicked.is_empty(), "panicked on {panicked:?}");
    assert!(seen >= 16, "the corpus has {seen} inputs");
}
