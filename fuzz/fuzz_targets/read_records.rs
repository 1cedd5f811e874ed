//! Any record words in a well-formed native file must be read or refused,
//! never panic or hang, and whatever is read must summarize: the decoder,
//! the joins behind it (GPU work and instances, allocator levels, queue
//! pairing, stage nesting) and the analysis. `read_profile` fuzzes the file
//! as bytes, where nearly every input fails at the magic or a chunk's
//! framing; here the frame is fixed and libFuzzer spends its time in the
//! records, as a damaged recorder or a hostile file could write them.
//!
//! Input: little-endian u64 words; [`NEXT_THREAD`] starts the next thread's
//! records (up to four threads), and [`PASS`] followed by a tick ends a
//! collector pass there (a PASS chunk, by which queue operations settle).
//! Seeds are real profiles' record chunks so joined (`scripts/fuzz_seeds.py`).
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run read_records fuzz/corpus/read_records -- -max_total_time=600`
//!
//! An input that crashed it goes into `read_profile`'s corpus as the native
//! file it made, which `cargo test` replays: run the target's binary on it
//! with `STAGEPROF_FUZZ_NATIVE_OUT=FILE` set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stageprof_analysis::Aggregator;
use stageprof_model::native::NativeWriter;
use stageprof_model::ThreadInfo;

/// The word that ends one thread's records and starts the next's.
const NEXT_THREAD: u64 = u64::from_le_bytes(*b"NEXTTHRD");
/// The word before the tick of a collector pass that ends where it stands.
const PASS: u64 = u64::from_le_bytes(*b"PASSTICK");

fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
    let mut file = NativeWriter::new(Vec::new()).unwrap();
    let meta = [
        ("ticks_per_second", "1000000000"),
        ("start_ticks", "0"),
        ("memory_tracked", "true"),
        ("cpu_time", "true"),
        ("gpu_records", "true"),
    ];
    file.meta(&meta.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    // As the seeds name them (the Python package's profiles).
    let names = ["frame", "process RSS bytes", "load", "infer", "inner", "frames", "produce", "consume"];
    file.names(0, names.into_iter()).unwrap();
    for (index, records) in words.split(|w| *w == NEXT_THREAD).take(4).enumerate() {
        let index = index as u32;
        file.thread(&ThreadInfo { index, os_tid: 100 + u64::from(index), name: format!("t{index}") }).unwrap();
        let mut rest = records;
        while let Some(at) = rest.iter().position(|w| *w == PASS) {
            file.records(index, &rest[..at]).unwrap();
            file.pass(rest.get(at + 1).copied().unwrap_or(0)).unwrap();
            rest = rest.get(at + 2..).unwrap_or_default();
        }
        file.records(index, rest).unwrap();
    }
    file.end(0, words.iter().copied().max().unwrap_or(0), "finish").unwrap();
    let bytes = file.into_inner();
    if let Ok(out) = std::env::var("STAGEPROF_FUZZ_NATIVE_OUT") {
        std::fs::write(out, &bytes).unwrap();
    }
    let mut agg = Aggregator::default();
    if let Ok(p) = stageprof_readers::read_profile(bytes.as_slice(), &mut agg) {
        let _ = agg.summary(&p.catalog, p.run, 3);
    }
});
