//! A profile of ITEMS items passed between two threads through one bounded
//! queue of 64, written to the directory given: the input for timing how a
//! queue-heavy profile reads (docs/benchmarks.md, `stageprof report DIR`).
//!
//! `cargo run --release -p stageprof --example queue_items -- OUT_DIR ITEMS`

use stageprof::{queue, Config, Format};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(out), Some(Ok(items))) = (args.next(), args.next().map(|n| n.parse::<u64>())) else {
        panic!("usage: queue_items OUT_DIR ITEMS");
    };
    // The process's session: queues record into it.
    let session =
        stageprof::init_with(Config { output_dir: out.into(), formats: vec![Format::Native], ..Config::default() });
    let (tx, rx) = queue::bounded::<u64>("items", 64);
    let producer = std::thread::spawn(move || (0..items).for_each(|i| tx.send(i).expect("the receiver waits")));
    let received = rx.iter().count() as u64;
    producer.join().expect("the producer ends");
    assert_eq!(received, items);
    session.finish();
}
