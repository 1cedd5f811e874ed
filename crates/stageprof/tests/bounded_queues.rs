//! A bounded run's queues (`max_disk_mb`: summed up while recording, the
//! reader pairing receives with sends as it goes) against an unbounded run
//! of the same work: every operation counted, every receive paired. One
//! test function, because queues record into the global session.

use std::path::Path;
use std::thread;

use stageprof::queue;
use stageprof::{Config, Format};
use stageprof_analysis::Summary;
use stageprof_model::native::{Chunk, NativeReader, PROFILE_FILE};

/// Items through each queue: more than the reader holds back (65,536
/// operations), so the pairing settles while the run goes on.
const ITEMS: u64 = 60_000;

/// A producer thread sends `ITEMS` through a queue of 8 to this thread, which
/// passes each on through a second queue to a third thread.
fn run(dir: &Path, max_disk_mb: Option<u64>) -> Summary {
    let session = stageprof::init_with(Config {
        output_dir: dir.to_path_buf(),
        formats: vec![Format::Native, Format::Summary],
        rss_sample_ms: 0,
        max_disk_mb,
        ..Config::default()
    });
    let (to_middle, from_source) = queue::bounded::<u64>("first", 8);
    let (to_sink, from_middle) = queue::bounded::<u64>("second", 8);
    let source = thread::spawn(move || (0..ITEMS).for_each(|i| to_middle.send(i).unwrap()));
    let sink = thread::spawn(move || from_middle.iter().sum::<u64>());
    for item in from_source.iter() {
        to_sink.send(item).unwrap();
    }
    drop(to_sink);
    source.join().unwrap();
    assert_eq!(sink.join().unwrap(), ITEMS * (ITEMS - 1) / 2, "every item once");
    session.finish().summary.expect("a summary")
}

#[test]
fn a_bounded_run_pairs_every_receive_as_an_unbounded_one_does() {
    let (plain_dir, bounded_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (what, summary) in [("unbounded", run(plain_dir.path(), None)), ("bounded", run(bounded_dir.path(), Some(1)))] {
        let queues = &summary.queues;
        let counts: Vec<(&str, u64, u64, u64)> =
            queues.iter().map(|q| (q.name.as_str(), q.sent, q.received, q.residence.count)).collect();
        // (A recording held up long enough to make the reader pair out of order says so in a warning.)
        let warnings = &summary.run.warnings;
        assert_eq!(counts, [("first", ITEMS, ITEMS, ITEMS), ("second", ITEMS, ITEMS, ITEMS)], "{what}: {warnings:?}");
        assert!(queues.iter().all(|q| q.depth_max <= 8), "{queues:?}");
    }
    // The reader settled the queue operations of the file by the collector's passes.
    let file = std::fs::File::open(plain_dir.path().join(PROFILE_FILE)).unwrap();
    let mut chunks = NativeReader::new(std::io::BufReader::new(file)).unwrap();
    let mut passes = Vec::new();
    while let Some(chunk) = chunks.next_chunk().unwrap() {
        if let Chunk::Pass { began } = chunk {
            passes.push(began);
        }
    }
    assert!(!passes.is_empty() && passes.is_sorted(), "{passes:?}");
}
