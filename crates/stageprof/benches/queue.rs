//! What an instrumented queue costs: a send + receive pair through
//! `stageprof::queue` against the crossbeam-channel it wraps, side by side,
//! on one thread (uncontended) and with two producer threads, with a session
//! recording and with none. `cargo bench -p stageprof --bench queue`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use stageprof::{Config, Format};

/// One send and one receive, on one thread.
fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("send+recv, one thread");
    let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
    g.bench_function("crossbeam-channel", |b| {
        b.iter(|| {
            tx.send(black_box(1)).unwrap();
            black_box(rx.recv().unwrap())
        })
    });
    let (qtx, qrx) = stageprof::queue::bounded::<u64>("bench", 64);
    g.bench_function("stageprof::queue, no session", |b| {
        b.iter(|| {
            qtx.send(black_box(1)).unwrap();
            black_box(qrx.recv().unwrap())
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let config = Config { output_dir: dir.path().into(), formats: vec![Format::Native], ..Config::default() };
    let session = stageprof::init_with(config);
    g.bench_function("stageprof::queue, recording", |b| {
        b.iter(|| {
            qtx.send(black_box(1)).unwrap();
            black_box(qrx.recv().unwrap())
        })
    });
    drop(session);
    g.finish();
}

/// Receives on this thread while two threads keep the queue fed.
fn two_producers(c: &mut Criterion) {
    let mut g = c.benchmark_group("recv with two producers");
    let feed = |send: Arc<dyn Fn() + Send + Sync>, stop: Arc<AtomicBool>| {
        (0..2)
            .map(|_| {
                let (send, stop) = (send.clone(), stop.clone());
                thread::spawn(move || {
                    while !stop.load(Relaxed) {
                        send();
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let producers = feed(
        Arc::new(move || {
            let _ = tx.send_timeout(1, Duration::from_millis(1));
        }),
        stop.clone(),
    );
    g.bench_function("crossbeam-channel", |b| b.iter(|| black_box(rx.recv().unwrap())));
    stop.store(true, Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let config = Config { output_dir: dir.path().into(), formats: vec![Format::Native], ..Config::default() };
    let session = stageprof::init_with(config);
    let (qtx, qrx) = stageprof::queue::bounded::<u64>("bench", 64);
    let stop = Arc::new(AtomicBool::new(false));
    let producers = feed(
        Arc::new(move || {
            let _ = qtx.send_timeout(1, Duration::from_millis(1));
        }),
        stop.clone(),
    );
    g.bench_function("stageprof::queue, recording", |b| b.iter(|| black_box(qrx.recv().unwrap())));
    stop.store(true, Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());
    drop(session);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = uncontended, two_producers
}
criterion_main!(benches);
