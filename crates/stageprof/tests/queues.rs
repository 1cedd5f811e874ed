//! Instrumented queues between threads: every item arrives once, and the
//! report says which side waited. One test function, because the global
//! session is process-wide.

use std::thread;
use std::time::{Duration, Instant};

use stageprof::queue::{self, TrySendError};
use stageprof::{Config, Format};

const ITEMS: u64 = 60;
const WORK: Duration = Duration::from_millis(4);

/// Sends `ITEMS` numbers through `name` (capacity 4), the producer working
/// `produce` per item and the consumer `consume`; returns the numbers
/// received and the time each side spent waiting, by the test's own clock.
fn pipeline(name: &str, produce: Duration, consume: Duration) -> (Vec<u64>, Duration, Duration) {
    let (tx, rx) = queue::bounded::<u64>(name, 4);
    let producer = thread::spawn(move || {
        let mut blocked = Duration::ZERO;
        for i in 0..ITEMS {
            thread::sleep(produce);
            let t = Instant::now();
            tx.send(i).unwrap();
            blocked += t.elapsed();
        }
        blocked
    });
    let mut got = Vec::new();
    let mut waited = Duration::ZERO;
    loop {
        let t = Instant::now();
        let Ok(item) = rx.recv() else { break };
        waited += t.elapsed();
        got.push(item);
        thread::sleep(consume);
    }
    (got, producer.join().unwrap(), waited)
}

/// `BURSTS` times: four sends fill a queue of 4 at once (well inside the
/// 10 µs an end goes without reading the depth), it stays full
/// `HOLD`, four receives empty it, it stays empty `HOLD`. Returns the
/// share of time it was full by the test's clock, from its making to its last receive.
fn bursts(name: &str) -> f64 {
    const BURSTS: u32 = 5;
    const HOLD: Duration = Duration::from_millis(10);
    let (tx, rx) = queue::bounded::<u32>(name, 4);
    let made = Instant::now();
    let mut full = Duration::ZERO;
    let mut last = made;
    for burst in 0..BURSTS {
        (0..4).for_each(|i| tx.send(i).unwrap());
        let filled = Instant::now();
        thread::sleep(HOLD);
        full += filled.elapsed();
        (0..4).for_each(|_| assert!(rx.recv().is_ok()));
        last = Instant::now();
        if burst + 1 < BURSTS {
            thread::sleep(HOLD);
        }
    }
    full.as_secs_f64() / (last - made).as_secs_f64()
}

/// Two items sent while recording, three with recording off, one more once
/// it is back on, then all six received: the sends not recorded are not
/// counted, but the first read after the gap (each end reads the depth at
/// least 10 µs after its last read) pins the depth at 6.
fn gap_in_recording(name: &str) {
    let (tx, rx) = queue::bounded::<u32>(name, 8);
    (0..2).for_each(|i| tx.send(i).unwrap());
    stageprof::set_enabled(false);
    (0..3).for_each(|i| tx.send(i).unwrap());
    stageprof::set_enabled(true);
    thread::sleep(Duration::from_millis(1));
    tx.send(9).unwrap();
    thread::sleep(Duration::from_millis(1));
    assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 6);
}

/// Two producers send `ITEMS` items each through `name`, every item carrying
/// the instant its send began; a slower consumer takes them. Returns each
/// item's residence by the test's clock (its send's start to its receive's
/// return), sorted: the ground truth for the reader's pairing of receives
/// with sends, which the items do not help with.
fn two_producers(name: &str) -> Vec<u64> {
    let (tx, rx) = queue::bounded::<Instant>(name, 8);
    let producers: Vec<_> = [Duration::from_micros(300), Duration::from_micros(470)]
        .into_iter()
        .map(|pause| {
            let tx = tx.clone();
            thread::spawn(move || {
                for _ in 0..ITEMS {
                    thread::sleep(pause);
                    tx.send(Instant::now()).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut residences = Vec::new();
    while let Ok(sent) = rx.recv() {
        residences.push(sent.elapsed().as_nanos() as u64);
        thread::sleep(Duration::from_micros(500));
    }
    producers.into_iter().for_each(|p| p.join().unwrap());
    residences.sort_unstable();
    residences
}

#[test]
fn queues_count_every_item_and_say_who_waited() {
    let dir = tempfile::tempdir().unwrap();
    let session = stageprof::init_with(Config {
        output_dir: dir.path().into(),
        formats: vec![Format::Summary, Format::Native],
        ..Config::default()
    });
    let (slow_got, slow_blocked, _) = pipeline("to slow consumer", Duration::ZERO, WORK);
    let (starved_got, _, starved_waited) = pipeline("to starved consumer", WORK, Duration::ZERO);
    let bursts_full = bursts("bursts");
    gap_in_recording("gap");
    let residences = two_producers("two producers");

    // The ends behave as crossbeam's: a full queue hands the item back, a closed one too.
    let (tx, rx) = queue::bounded::<&str>("tiny", 1);
    tx.try_send("a").unwrap();
    assert!(matches!(tx.try_send("b"), Err(TrySendError::Full("b"))));
    assert_eq!(rx.try_recv(), Ok("a"));
    drop(rx);
    assert!(matches!(tx.try_send("c"), Err(TrySendError::Disconnected("c"))));

    let summary = session.finish().summary.expect("a summary");
    for got in [&slow_got, &starved_got] {
        assert_eq!(got, &(0..ITEMS).collect::<Vec<_>>(), "every item once, in order");
    }
    let queue = |name: &str| summary.queues.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("no {name}"));

    let slow = queue("to slow consumer");
    assert_eq!((slow.capacity, slow.sent, slow.received, slow.depth_max), (Some(4), ITEMS, ITEMS, 4));
    // The producer waited on the full queue for about all the consumer's work.
    let blocked = slow.sender_blocked_ns as f64;
    let truth = slow_blocked.as_nanos() as f64;
    assert!((blocked - truth).abs() <= 0.05 * truth, "sender blocked {blocked} ns, measured around send {truth} ns");
    // Full while the consumer works, refilled as soon as the producer wakes
    // (later on a loaded machine: the share is compared with the other queue's).
    // An item waits for the four ahead of it to be worked on.
    assert!(slow.residence.p50_ns >= 3 * WORK.as_nanos() as u64, "{:?}", slow.residence);

    let starved = queue("to starved consumer");
    assert_eq!((starved.sent, starved.received), (ITEMS, ITEMS));
    let waited = starved.receiver_waited_ns as f64;
    let truth = starved_waited.as_nanos() as f64;
    assert!((waited - truth).abs() <= 0.05 * truth, "receiver waited {waited} ns, measured around recv {truth} ns");
    assert!(starved.empty_pct > 50.0 && starved.full_pct.unwrap() < 5.0, "{starved:?}");
    assert!(slow.full_pct.unwrap() > starved.full_pct.unwrap() + 25.0, "{slow:?} against {starved:?}");
    assert!(slow.empty_pct < 10.0, "{slow:?}");
    assert!(starved.residence.p50_ns < WORK.as_nanos() as u64, "{:?}", starved.residence);
    // A send that found room waited for nothing (unless a stalled consumer let the queue fill).
    if starved.depth_max < 4 {
        assert_eq!(starved.sender_blocked_ns, 0, "{starved:?}");
    }

    // Depths not read in a burst are counted on: full and its time full as by the test's clock.
    let burst = queue("bursts");
    assert_eq!((burst.sent, burst.received, burst.depth_max), (20, 20, 4), "{burst:?}");
    let full = burst.full_pct.unwrap();
    assert!(
        (full - 100.0 * bursts_full).abs() < 2.0,
        "full {full}% against {}% by the test's clock",
        100.0 * bursts_full
    );
    assert!((burst.depth_mean - 4.0 * bursts_full).abs() < 0.1, "{burst:?}");

    // Sends while recording was off are not in the counts; the depth read after the gap is.
    let gap = queue("gap");
    assert_eq!((gap.sent, gap.received, gap.depth_max), (3, 6, 6), "{gap:?}");

    // Each receive paired with the send that brought its item: the residences as the items say.
    let two = queue("two producers");
    assert_eq!((two.sent, two.received, two.residence.count), (2 * ITEMS, 2 * ITEMS, 2 * ITEMS));
    let rank = |q: f64| residences[((q * residences.len() as f64).ceil() as usize).max(1) - 1];
    let r = &two.residence;
    for (what, mine, truth) in [
        ("min", r.min_ns, rank(0.0)),
        ("p50", r.p50_ns, rank(0.5)),
        ("p95", r.p95_ns, rank(0.95)),
        ("max", r.max_ns, rank(1.0)),
    ] {
        let off = mine.abs_diff(truth);
        assert!(off <= 30_000 || off * 100 <= 3 * truth, "residence {what} {mine} ns, by the items {truth} ns");
    }

    let tiny = queue("tiny");
    assert_eq!((tiny.sent, tiny.received), (1, 1), "refused sends move nothing");

    // The JSON summary lists them.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let names: Vec<&str> = json["queues"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bursts", "gap", "tiny", "to slow consumer", "to starved consumer", "two producers"]);
    assert_eq!(json["queues"][3]["sent"], ITEMS);
    // And so does the table, a line each.
    let table = stageprof_render::render_table(&summary, &stageprof_render::TableOptions::plain());
    let line = table.lines().find(|l| l.starts_with("queue to slow consumer:")).expect("a line for the queue");
    assert!(line.starts_with("queue to slow consumer: 60 in, 60 out; depth mean "), "{line}");
    assert!(line.contains(" of 4, max 4, full "), "{line}");
}
