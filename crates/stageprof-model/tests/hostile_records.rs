//! Record words nobody wrote on purpose, fed to the decoder as a damaged
//! file or a confused writer would: it never panics, and every received
//! queue item it decodes reaches the sink exactly once, its age or not,
//! however the sends it waits for come, or never do.

use stageprof_model::ingest::RecordDecoder;
use stageprof_model::wire::{self, header, queue_words, QueueRecord, Record, TickScale, MAX_QUEUE_WORDS};
use stageprof_model::{Catalog, CounterSample, ProfileSink, QueueEvent, QueueOp, Span};

/// Counts what reaches it.
#[derive(Default)]
struct Counts {
    received: u64,
    aged: u64,
    /// Ages summed per receiving thread.
    age_ns: [u64; 8],
}

impl ProfileSink for Counts {
    fn span(&mut self, _: &Span, _: &Catalog) {}
    fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
    fn queue(&mut self, event: &QueueEvent, _: &Catalog) {
        if let QueueOp::Received { age_ns, .. } = event.op {
            self.received += 1;
            self.aged += u64::from(age_ns.is_some());
            let sum = &mut self.age_ns[event.thread as usize % 8];
            *sum = sum.wrapping_add(age_ns.unwrap_or(0));
        }
    }
}

/// xorshift64: the same words every run.
struct Words(u64);

impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A header of any kind (unknown ones too), with any flags, naming one of a few ids.
    fn header(&mut self) -> u64 {
        let r = self.next();
        header(r % 16, r & 0xfff0, (r >> 40) as u32 % 4)
    }
}

/// The words of one queue record.
fn queue_record(name: u32, at: u64, op: QueueRecord) -> Vec<u64> {
    let mut words = [0; MAX_QUEUE_WORDS];
    let len = queue_words(name, at, op, &mut words);
    words[..len].to_vec()
}

/// Received records among `words`, as the wire layer decodes them up to the first bad one.
fn receives_in(words: &[u64]) -> u64 {
    let mut n = 0;
    let _ = wire::decode(words, |r| {
        n += u64::from(matches!(
            r,
            Record::Queue { op: QueueRecord::Received { .. } | QueueRecord::ReceivedAged { .. }, .. }
        ))
    });
    n
}

const SCALE: TickScale = TickScale { ticks_per_second: 1_000_000_000, start_ticks: 0 };

#[test]
fn random_words_never_panic_and_every_receive_is_delivered_once() {
    let mut rng = Words(0x9e37_79b9_7f4a_7c15);
    let (mut decoder, mut catalog, mut sink) = (RecordDecoder::new(SCALE), Catalog::default(), Counts::default());
    let mut expected = 0;
    for chunk in 0..2_000 {
        // Half the chunks are well-formed queue traffic with sends missing or late;
        // half are headers and words at random.
        let mut words = Vec::new();
        for _ in 0..(rng.next() % 40) {
            if chunk % 2 == 0 {
                let (name, at) = ((rng.next() % 3) as u32, rng.next() % 1_000_000);
                let op = match rng.next() % 3 {
                    0 => QueueRecord::Sent {
                        blocked: rng.next() % 4,
                        depth: Some(rng.next() % 8).filter(|d| d % 2 == 0),
                    },
                    1 => QueueRecord::Received { waited: 0, depth: Some(1), sent: Some(rng.next() % 1_000_000) },
                    _ => QueueRecord::Received { waited: 3, depth: None, sent: None },
                };
                words.extend_from_slice(&queue_record(name, at, op));
            } else {
                words.push(rng.header());
                (0..rng.next() % 8).for_each(|_| words.push(rng.next()));
            }
        }
        expected += receives_in(&words);
        let thread = (rng.next() % 5) as u32;
        let _ = decoder.feed(&mut catalog, thread, &words, &mut sink);
    }
    decoder.finish(&catalog, None, &mut sink);
    assert!(expected > 1_000, "the test made too few receives: {expected}");
    assert_eq!(sink.received, expected);
    assert!(sink.aged <= sink.received);
}

#[test]
fn a_long_pipeline_fed_a_thread_at_a_time_ages_every_item() {
    // Thread 0 makes items into queue 0, thread 1 passes each into queue 1,
    // thread 2 takes them; each batch of 100 items decoded the last thread first.
    let (mut decoder, mut catalog, mut sink) = (RecordDecoder::new(SCALE), Catalog::default(), Counts::default());
    for batch in 0..100u64 {
        let mut per_thread: [Vec<u64>; 3] = Default::default();
        for i in 0..100 {
            let t = (batch * 100 + i) * 1_000 + 1;
            let mut put = |thread: usize, queue: u32, at: u64, op| {
                per_thread[thread].extend_from_slice(&queue_record(queue, at, op));
            };
            put(0, 0, t, QueueRecord::Sent { blocked: 0, depth: Some(1) });
            put(1, 0, t + 10, QueueRecord::Received { waited: 0, depth: None, sent: Some(t) });
            put(1, 1, t + 25, QueueRecord::Sent { blocked: 5, depth: None });
            put(2, 1, t + 30, QueueRecord::Received { waited: 0, depth: Some(0), sent: Some(t + 20) });
        }
        for thread in [2, 1, 0] {
            decoder.feed(&mut catalog, thread as u32, &per_thread[thread], &mut sink).unwrap();
        }
    }
    decoder.finish(&catalog, None, &mut sink);
    assert_eq!((sink.received, sink.aged), (20_000, 20_000));
    // Ages from each item's first send: 10 ns at thread 1, 30 ns at thread 2.
    assert_eq!(sink.age_ns[1..3], [10 * 10_000, 30 * 10_000]);
}

#[test]
fn a_thread_read_far_behind_another_is_said() {
    // One queue, items without stamps (as Rust's queue sends them): 100,000
    // pairs, the sender's records decoded after all the receiver's (a
    // recording held up past what the reader holds back), then in step.
    let late = |sender_last: bool| {
        let (mut decoder, mut catalog, mut sink) = (RecordDecoder::new(SCALE), Catalog::default(), Counts::default());
        let (mut sends, mut receives) = (Vec::new(), Vec::new());
        for i in 0..100_000u64 {
            sends.extend_from_slice(&queue_record(0, i * 1_000, QueueRecord::Sent { blocked: 0, depth: None }));
            let received = QueueRecord::Received { waited: 0, depth: None, sent: None };
            receives.extend_from_slice(&queue_record(0, i * 1_000 + 1, received));
        }
        if sender_last {
            decoder.feed(&mut catalog, 1, &receives, &mut sink).unwrap();
            decoder.feed(&mut catalog, 0, &sends, &mut sink).unwrap();
        } else {
            for (s, r) in sends.chunks(3_000).zip(receives.chunks(3_000)) {
                decoder.feed(&mut catalog, 0, s, &mut sink).unwrap();
                decoder.feed(&mut catalog, 1, r, &mut sink).unwrap();
            }
        }
        decoder.finish(&catalog, None, &mut sink);
        assert_eq!(sink.received, 100_000);
        decoder.join_warnings().find_map(|w| match w {
            stageprof_model::Warning::QueueOperationsLate { count } => Some(count),
            _ => None,
        })
    };
    assert!(late(true).is_some_and(|count| count > 0));
    assert_eq!(late(false), None);
}
