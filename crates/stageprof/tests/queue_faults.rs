//! Queues used the wrong way round: made before the session, used across
//! two sessions, dropped with items in them, two under one name. No item is
//! lost or doubled, the figures stay right, and what cannot be right is said
//! naming the queue. One test function: the global session is process-wide.

use stageprof::queue;
use stageprof::{Config, Format, Summary};
use stageprof_model::Warning;

fn session(dir: &std::path::Path) -> stageprof::Session {
    stageprof::init_with(Config { output_dir: dir.into(), formats: vec![Format::Summary], ..Config::default() })
}

fn queue_stats<'a>(summary: &'a Summary, name: &str) -> &'a stageprof_analysis::QueueStats {
    summary.queues.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("queue {name} in {:?}", summary.queues))
}

#[test]
fn queues_made_early_dropped_full_or_named_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Made, and used, before any session.
    let (early_tx, early_rx) = queue::bounded::<u32>("made early", 3);
    early_tx.send(100).unwrap();
    assert_eq!(early_rx.recv(), Ok(100));

    let first = session(dir.path());
    let got: Vec<u32> = (0..5)
        .map(|i| {
            early_tx.send(i).unwrap();
            early_rx.recv().unwrap()
        })
        .collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // Two queues under one name.
    let (a_tx, a_rx) = queue::bounded::<u32>("twin", 2);
    let (b_tx, b_rx) = queue::unbounded::<u32>("twin");
    a_tx.send(1).unwrap();
    b_tx.send(2).unwrap();
    assert_eq!((a_rx.recv(), b_rx.recv()), (Ok(1), Ok(2)));
    // Dropped with 3 items in it.
    let (left_tx, left_rx) = queue::bounded::<u32>("left full", 8);
    for i in 0..7 {
        left_tx.send(i).unwrap();
    }
    for _ in 0..4 {
        left_rx.recv().unwrap();
    }
    drop((left_tx, left_rx));
    let summary = first.finish().summary.expect("a summary");

    let early = queue_stats(&summary, "made early");
    assert_eq!((early.capacity, early.sent, early.received), (Some(3), 5, 5), "{early:?}");
    assert!(early.full_pct.is_some(), "its capacity is known, so is its time full");
    let left = queue_stats(&summary, "left full");
    assert_eq!((left.sent, left.received), (7, 4));
    let warnings = &summary.run.warnings;
    assert!(warnings.contains(&Warning::QueueItemsLeft { queue: "left full".into(), count: 3 }), "{warnings:?}");
    assert!(warnings.contains(&Warning::QueueNameReused { queue: "twin".into(), count: 2 }), "{warnings:?}");
    assert!(!warnings.iter().any(|w| matches!(w, Warning::QueueNameReused { queue, .. } if queue == "made early")));
    assert_eq!(queue_stats(&summary, "twin").sent, 2);

    // The same queue in a second session: known there too, counted afresh.
    let second = session(dir.path());
    early_tx.send(7).unwrap();
    assert_eq!(early_rx.recv(), Ok(7));
    let summary = second.finish().summary.expect("a summary");
    let early = queue_stats(&summary, "made early");
    assert_eq!((early.capacity, early.sent, early.received), (Some(3), 1, 1), "{early:?}");
    assert!(summary.run.warnings.is_empty(), "{:?}", summary.run.warnings);
}
