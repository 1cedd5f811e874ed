//! What an instrumented queue costs: send + receive pairs through
//! `stageprof::queue` against the crossbeam-channel it wraps, on one thread
//! (uncontended) and with two producer threads feeding one receiver, with a
//! session recording and with recording off. `cargo bench -p stageprof
//! --bench queue [-- ROUNDS] [one|two]` (a word: only the comparisons whose
//! title has it).
//!
//! The differences asked of the queue are a few nanoseconds, smaller than
//! how far a shared machine drifts between two benchmarks run one after the
//! other. So the contenders are timed in short rounds, taking turns in a
//! rotating order, and each cost is the median over rounds of a round's
//! time minus the crossbeam round beside it: drift over seconds falls on
//! both alike. Recording is switched with `stageprof::set_enabled`, which is
//! what the queue's hot path sees with no session too.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use stageprof::{Config, Format};

/// Pairs a round on one thread, and items each producer sends a round.
const PAIRS: usize = 4_000;
const ITEMS_PER_PRODUCER: usize = 2_000;
const CAPACITY: usize = 64;

/// The contenders, in the order of the lines printed.
#[derive(Clone, Copy)]
enum Contender {
    Crossbeam,
    Off,
    Recording,
}

const CONTENDERS: [Contender; 3] = [Contender::Crossbeam, Contender::Off, Contender::Recording];

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Crossbeam => "crossbeam-channel",
            Contender::Off => "stageprof::queue, off",
            Contender::Recording => "stageprof::queue, recording",
        }
    }
}

/// Nanoseconds a pair (or an item, with producers) takes in one round of `contender`.
type Round = dyn FnMut(Contender) -> f64;

/// Makes the channels of one comparison and returns its round.
type Setup = fn() -> Box<Round>;

/// A contender's channel of u64 items, both ends.
trait Channel: Send + Sync + 'static {
    fn send(&self, item: u64);
    fn recv(&self);
}

impl Channel for (crossbeam_channel::Sender<u64>, crossbeam_channel::Receiver<u64>) {
    fn send(&self, item: u64) {
        self.0.send(item).unwrap();
    }
    fn recv(&self) {
        black_box(self.1.recv().unwrap());
    }
}

impl Channel for (stageprof::queue::Sender<u64>, stageprof::queue::Receiver<u64>) {
    fn send(&self, item: u64) {
        self.0.send(item).unwrap();
    }
    fn recv(&self) {
        black_box(self.1.recv().unwrap());
    }
}

/// How a comparison times one round through a channel.
trait Timing: 'static {
    fn time<C: Channel>(&self, channel: &Arc<C>) -> f64;
}

/// One thread sends and receives `PAIRS` items, one at a time.
struct OneThread;

impl Timing for OneThread {
    fn time<C: Channel>(&self, channel: &Arc<C>) -> f64 {
        let start = Instant::now();
        (0..PAIRS).for_each(|i| {
            channel.send(black_box(i as u64));
            channel.recv();
        });
        start.elapsed().as_nanos() as f64 / PAIRS as f64
    }
}

/// Two producer threads send `ITEMS_PER_PRODUCER` items each while this
/// thread receives them all. The three threads are pinned to three cores
/// and live as long as the comparison, so that every contender's round
/// runs on the same cores: threads left to the scheduler land on other
/// cores (or siblings of one core) from round to round, and rounds of the
/// same channel then differ by a hundred nanoseconds an item.
struct TwoProducers {
    rounds: [crossbeam_channel::Sender<Arc<dyn Channel>>; 2],
    go: Arc<Barrier>,
    done: crossbeam_channel::Receiver<()>,
}

impl TwoProducers {
    fn new() -> TwoProducers {
        let go = Arc::new(Barrier::new(3));
        let (done_tx, done) = crossbeam_channel::unbounded();
        pin_to_core(1);
        let rounds = [0, 1].map(|producer| {
            let (round, channels) = crossbeam_channel::unbounded::<Arc<dyn Channel>>();
            let (go, done) = (go.clone(), done_tx.clone());
            thread::spawn(move || {
                pin_to_core(producer + 2);
                for channel in channels {
                    go.wait();
                    (0..ITEMS_PER_PRODUCER).for_each(|i| channel.send(i as u64));
                    done.send(()).unwrap();
                }
            });
            round
        });
        TwoProducers { rounds, go, done }
    }
}

impl Timing for TwoProducers {
    fn time<C: Channel>(&self, channel: &Arc<C>) -> f64 {
        for round in &self.rounds {
            round.send(channel.clone()).unwrap();
        }
        self.go.wait();
        let start = Instant::now();
        (0..2 * ITEMS_PER_PRODUCER).for_each(|_| channel.recv());
        let ns = start.elapsed().as_nanos() as f64 / (2 * ITEMS_PER_PRODUCER) as f64;
        self.done.iter().take(2).for_each(drop);
        ns
    }
}

/// Runs the calling thread on core `core` (modulo the cores there are),
/// where the system lets it (else where the scheduler puts it).
fn pin_to_core(core: usize) {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bit set that lives through both calls, which
    // only read it; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core % cores, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One comparison's round, timed by `timing` through channels made afresh
/// for each round (the queue named `name`). With two producers an item's
/// time depends on where the channel's cache lines fall against the other
/// threads' data: channels made once gave each contender a placement for
/// the whole run, and the queue with recording off differed from crossbeam
/// by up to 70 ns an item, and from itself recording in the wrong direction.
fn comparison(timing: impl Timing, name: &str) -> Box<Round> {
    let name = name.to_owned();
    Box::new(move |contender| match contender {
        Contender::Crossbeam => timing.time(&Arc::new(crossbeam_channel::bounded::<u64>(CAPACITY))),
        Contender::Off | Contender::Recording => {
            timing.time(&Arc::new(stageprof::queue::bounded::<u64>(&name, CAPACITY)))
        }
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `rounds` rounds of each contender in turn and prints each one's
/// median time and its median cost over the crossbeam round beside it.
fn compare(title: &str, rounds: usize, mut round: Box<Round>) {
    let n = CONTENDERS.len();
    let mut times: [Vec<f64>; CONTENDERS.len()] = Default::default();
    for r in 0..rounds + 1 {
        let mut this_round = [0.0; CONTENDERS.len()];
        for k in 0..n {
            let i = (r + k) % n;
            stageprof::set_enabled(matches!(CONTENDERS[i], Contender::Recording));
            this_round[i] = round(CONTENDERS[i]);
        }
        // The first round warms caches and the recorder's blocks.
        if r > 0 {
            (0..n).for_each(|i| times[i].push(this_round[i]));
        }
    }
    let full_speed = full_speed_rounds(&times[..2]);
    println!(
        "{title} ({rounds} rounds, medians; at full speed: the {} rounds whose crossbeam and off rounds each took at most {FULL_SPEED}x their fastest)",
        full_speed.len()
    );
    for (i, contender) in CONTENDERS.iter().enumerate() {
        let time = median(times[i].clone());
        if i == 0 {
            println!("  {:<30} {time:8.1} ns", contender.label());
        } else {
            let costs: Vec<f64> = times[i].iter().zip(&times[0]).map(|(t, base)| t - base).collect();
            // Where no round was at full speed for both plain contenders, there is no figure.
            let at_full_speed = if full_speed.is_empty() {
                "none".to_owned()
            } else {
                format!("{:+6.1} ns", median(full_speed.iter().map(|&r| costs[r]).collect()))
            };
            println!(
                "  {:<30} {time:8.1} ns  {:+6.1} ns   at full speed {at_full_speed}",
                contender.label(),
                median(costs)
            );
        }
    }
}

/// How much slower than their fastest rounds the rounds of the channel
/// alone may be for a round to count as run at full speed.
const FULL_SPEED: f64 = 1.1;

/// The rounds run at full speed, by the times of the contenders that record
/// nothing (`plain`: crossbeam's and the queue's with recording off). The
/// shared hosts these run on slow a core down by a third or more for tens of
/// milliseconds at a time (another tenant on its sibling, as it looks), every
/// contender alike; a round takes about a millisecond, and where both plain
/// contenders ran at full speed the one recording most likely did too.
fn full_speed_rounds(plain: &[Vec<f64>]) -> Vec<usize> {
    let fastest: Vec<f64> = plain.iter().map(|t| t.iter().copied().fold(f64::INFINITY, f64::min)).collect();
    (0..plain[0].len()).filter(|&r| plain.iter().zip(&fastest).all(|(t, f)| t[r] <= f * FULL_SPEED)).collect()
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a few rounds show it works.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(if benching { 400 } else { 3 });
    let dir = tempfile::tempdir().unwrap();
    let config = Config { output_dir: dir.path().into(), formats: vec![Format::Native], ..Config::default() };
    let session = stageprof::init_with(config);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-') && a.parse::<usize>().is_err());
    let comparisons: [(&str, Setup); 2] = [
        ("send + receive, one thread", || comparison(OneThread, "bench")),
        ("receive, two producers", || comparison(TwoProducers::new(), "bench, two producers")),
    ];
    for (title, round) in comparisons {
        if filter.as_ref().is_none_or(|f| title.contains(f.as_str())) {
            compare(title, rounds, round());
        }
    }
    drop(session);
}
