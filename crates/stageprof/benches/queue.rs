//! What an instrumented queue costs: a send + receive pair through
//! `stageprof::queue` against the crossbeam-channel it wraps, side by side,
//! on one thread (uncontended) and with two producer threads, with a session
//! recording and with none. `cargo bench -p stageprof --bench queue`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
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

/// Times `recv` on this thread while two threads call `send` until stopped.
fn fed_by_two<G>(
    g: &mut BenchmarkGroup<'_, G>,
    label: &str,
    send: impl Fn() + Send + Sync + 'static,
    recv: impl Fn() -> u64,
) where
    G: criterion::measurement::Measurement,
{
    let send = Arc::new(send);
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let (send, stop) = (send.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Relaxed) {
                    send();
                }
            })
        })
        .collect();
    g.bench_function(label, |b| b.iter(|| black_box(recv())));
    stop.store(true, Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());
}

/// Receives on this thread while two threads keep the queue fed.
fn two_producers(c: &mut Criterion) {
    let mut g = c.benchmark_group("recv with two producers");
    let wait = Duration::from_millis(1);
    let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
    fed_by_two(
        &mut g,
        "crossbeam-channel",
        move || {
            let _ = tx.send_timeout(1, wait);
        },
        move || rx.recv().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Config { output_dir: dir.path().into(), formats: vec![Format::Native], ..Config::default() };
    let session = stageprof::init_with(config);
    let (tx, rx) = stageprof::queue::bounded::<u64>("bench", 64);
    let recv = move || rx.recv().unwrap();
    fed_by_two(
        &mut g,
        "stageprof::queue, recording",
        move || {
            let _ = tx.send_timeout(1, wait);
        },
        recv,
    );
    drop(session);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = uncontended, two_producers
}
criterion_main!(benches);
