//! The fuzzer's committed corpus (seeds and the inputs that once crashed
//! the reader), replayed in every test run: each is read or refused, never
//! a panic. The fuzzer itself: see fuzz/fuzz_targets/read_profile.rs.

use stageprof_analysis::Aggregator;

#[test]
fn every_corpus_input_is_read_or_refused() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/read_profile");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let mut agg = Aggregator::default();
        if let Ok(p) = stageprof_readers::read_profile(&bytes[..], &mut agg) {
            let _ = agg.summary(&p.catalog, p.run, 3);
        }
        seen += 1;
    }
    assert!(seen >= 10, "the corpus has {seen} inputs");
}
