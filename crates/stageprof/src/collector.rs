//! The collector thread: takes blocks from recording threads, appends them
//! to the native file, and folds them into the running summary through the
//! same decoder and aggregator that `stageprof report` uses.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use stageprof_analysis::{Aggregator, RecordDecoder, RunInfo};
use stageprof_model::native::NativeWriter;
use stageprof_model::wire::{header, kind, TickScale};
use stageprof_model::{Catalog, HostInfo, ThreadInfo};

use crate::clock::{clock, ticks, unix_ns};
use crate::cpu_time::{current_rss_bytes, peak_rss_bytes};
use crate::names;
use crate::recorder::{Block, Shared};

/// Thread index under which the collector records the process memory track.
const PROCESS_THREAD: u32 = u32::MAX;
const RSS_COUNTER: &str = "process RSS bytes";

/// What the collector hands back when recording stops.
pub(crate) struct Collected {
    pub catalog: Catalog,
    pub aggregator: Aggregator,
    pub run: RunInfo,
    /// The native file, if it was written completely.
    pub native_path: Option<PathBuf>,
    pub errors: Vec<String>,
}

pub(crate) struct Collector {
    shared: Arc<Shared>,
    catalog: Catalog,
    decoder: RecordDecoder,
    aggregator: Aggregator,
    native: Option<NativeWriter<BufWriter<File>>>,
    native_path: PathBuf,
    names_known: usize,
    threads_known: usize,
    /// Per thread: the sequence number of the next block to read.
    next_seq: Vec<u64>,
    scratch: Vec<u64>,
    errors: Vec<String>,
    rss_name: u32,
    rss_every: Option<Duration>,
    last_rss: Instant,
    run: RunInfo,
}

impl Collector {
    /// Opens the native file (a failure is reported, and recording goes on without it).
    pub fn new(shared: Arc<Shared>) -> Collector {
        let c = clock();
        let scale = TickScale { ticks_per_second: c.ticks_per_second, start_ticks: ticks() };
        let dir = shared.config.output_dir.clone();
        let native_path = dir.join("profile.stgp");
        let mut errors = Vec::new();
        let native = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create output directory {}: {e}", dir.display()))
            .and_then(|_| {
                let file =
                    File::create(&native_path).map_err(|e| format!("cannot write {}: {e}", native_path.display()))?;
                NativeWriter::new(BufWriter::with_capacity(1 << 20, file))
                    .map_err(|e| format!("cannot write {}: {e}", native_path.display()))
            });
        let native = match native {
            Ok(n) => Some(n),
            Err(e) => {
                report(&e);
                errors.push(e);
                None
            }
        };
        let run = RunInfo {
            source: "stageprof".into(),
            start_unix_ns: unix_ns(),
            host: HostInfo::detect(),
            pid: std::process::id(),
            cpu_time: shared.cpu_time,
            memory_tracked: shared.memory,
            ..RunInfo::default()
        };
        let rss_every =
            (shared.config.rss_sample_ms > 0).then(|| Duration::from_millis(shared.config.rss_sample_ms.into()));
        let mut collector = Collector {
            rss_name: names::intern(RSS_COUNTER),
            shared,
            catalog: Catalog::default(),
            decoder: RecordDecoder::new(scale),
            aggregator: Aggregator::default(),
            native,
            native_path,
            names_known: 0,
            threads_known: 0,
            next_seq: Vec::new(),
            scratch: Vec::new(),
            errors,
            rss_every,
            last_rss: Instant::now(),
            run,
        };
        collector.write_meta(c.kind, scale);
        collector
    }

    fn write_meta(&mut self, clock_kind: &str, scale: TickScale) {
        let mut meta: Vec<(String, String)> = vec![
            ("stageprof_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("clock".into(), clock_kind.into()),
            ("ticks_per_second".into(), scale.ticks_per_second.to_string()),
            ("start_ticks".into(), scale.start_ticks.to_string()),
            ("start_unix_ns".into(), self.run.start_unix_ns.to_string()),
            ("pid".into(), self.run.pid.to_string()),
            ("cpu_time".into(), self.run.cpu_time.to_string()),
            ("memory_tracked".into(), self.run.memory_tracked.to_string()),
        ];
        meta.extend(self.run.host.to_pairs().into_iter().map(|(k, v)| (k.to_owned(), v)));
        let process = ThreadInfo { index: PROCESS_THREAD, os_tid: u64::from(self.run.pid), name: "process".into() };
        self.write_native(|n| {
            n.meta(&meta)?;
            n.thread(&process)
        });
        self.catalog.add_thread(process);
    }

    /// Runs until the profiler stops, then returns everything collected.
    pub fn run(mut self) -> Collected {
        loop {
            let stopping = self.shared.stop.load(Acquire);
            self.drain();
            if stopping {
                break;
            }
            self.sample_rss();
            std::thread::park_timeout(Duration::from_millis(20));
        }
        // Blocks handed off while the last drain ran.
        self.drain();
        self.sample_rss_now();
        self.finish()
    }

    /// Reads every block that is ready, each thread's in order.
    fn drain(&mut self) {
        while let Some(b) = self.shared.full.pop() {
            self.consume(&b, true);
            self.shared.recycle(b);
        }
        let slots = self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for slot in slots {
            if let Some(b) = slot.current.load_full() {
                self.consume(&b, false);
            }
        }
    }

    /// Reads what `b` holds beyond what was read before; `complete` if its writer is done with it.
    fn consume(&mut self, b: &Block, complete: bool) {
        let len = b.len.load(Acquire);
        let thread = b.thread.load(Relaxed);
        let seq = b.seq.load(Relaxed);
        self.sync_threads();
        let Some(next) = self.next_seq.get_mut(thread as usize) else { return };
        if seq != *next {
            // A partial read of a block whose predecessor has not been read yet: wait for it.
            // Complete blocks of a thread arrive in order; if one ever did not, say so.
            if complete {
                self.errors.push(format!(
                    "internal: block {seq} of thread {thread} arrived before block {next}; its records are lost"
                ));
            }
            return;
        }
        if complete {
            *next += 1;
        }
        let from = b.consumed.load(Relaxed);
        if len <= from {
            return;
        }
        self.scratch.clear();
        self.scratch.extend(b.words[from..len].iter().map(|w| w.load(Relaxed)));
        b.consumed.store(len, Relaxed);
        self.sync_names();
        let words = std::mem::take(&mut self.scratch);
        self.write_native(|n| n.records(thread, &words));
        if let Err(e) = self.decoder.feed(&mut self.catalog, thread, &words, &mut self.aggregator) {
            self.errors.push(format!("internal: undecodable record from thread {thread}: {}", e.message));
        }
        self.scratch = words;
    }

    /// Names interned since the last call, to the catalog and the file.
    fn sync_names(&mut self) {
        let new = names::names_from(self.names_known);
        if new.is_empty() {
            return;
        }
        let first = self.names_known as u32;
        for (i, n) in new.iter().enumerate() {
            self.catalog.set_name(first + i as u32, n);
        }
        self.names_known += new.len();
        self.write_native(|w| w.names(first, new.iter().map(|n| &**n)));
    }

    /// Threads registered since the last call.
    fn sync_threads(&mut self) {
        let slots = self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() == self.threads_known {
            return;
        }
        let new: Vec<ThreadInfo> = slots[self.threads_known..]
            .iter()
            .map(|s| ThreadInfo { index: s.index, os_tid: s.os_tid, name: s.name.clone() })
            .collect();
        drop(slots);
        self.threads_known += new.len();
        self.next_seq.resize(self.threads_known, 0);
        for t in new {
            self.write_native(|n| n.thread(&t));
            self.catalog.add_thread(t);
        }
    }

    fn sample_rss(&mut self) {
        if self.rss_every.is_some_and(|every| self.last_rss.elapsed() >= every) {
            self.sample_rss_now();
        }
    }

    /// Records the process's resident memory as a counter, through the normal record path.
    fn sample_rss_now(&mut self) {
        if self.rss_every.is_none() {
            return;
        }
        self.last_rss = Instant::now();
        let Some(rss) = current_rss_bytes() else { return };
        self.sync_names();
        let words = [header(kind::COUNTER, 0, self.rss_name), ticks(), (rss as f64).to_bits()];
        self.write_native(|n| n.records(PROCESS_THREAD, &words));
        let _ = self.decoder.feed(&mut self.catalog, PROCESS_THREAD, &words, &mut self.aggregator);
    }

    /// Writes to the native file; on the first failure, reports it and stops writing.
    fn write_native(&mut self, f: impl FnOnce(&mut NativeWriter<BufWriter<File>>) -> std::io::Result<()>) {
        let Some(native) = self.native.as_mut() else { return };
        if let Err(e) = f(native) {
            let msg =
                format!("cannot write {}: {e}; it is abandoned, the pipeline goes on", self.native_path.display());
            report(&msg);
            self.errors.push(msg);
            self.native = None;
        }
    }

    fn finish(mut self) -> Collected {
        let end_ticks = ticks();
        let dropped = self.shared.dropped.load(Relaxed);
        let reason = self.shared.end_reason();
        let peak_rss = peak_rss_bytes();
        let mut meta = Vec::new();
        if let Some(p) = peak_rss {
            meta.push(("peak_rss_bytes".to_owned(), p.to_string()));
        }
        self.write_native(|n| {
            n.meta(&meta)?;
            n.end(dropped, end_ticks, &reason)
        });
        let end_ns = self.decoder.scale.ns(end_ticks);
        self.decoder.nester.finish(&self.catalog, Some(end_ns), &mut self.aggregator);
        self.shared.release_pool();
        let mut run = self.run;
        run.duration_ns = end_ns;
        run.dropped_records = dropped;
        run.end_reason = reason;
        run.peak_rss_bytes = peak_rss;
        Collected {
            catalog: self.catalog,
            aggregator: self.aggregator,
            run,
            native_path: self.native.is_some().then_some(self.native_path),
            errors: self.errors,
        }
    }
}

/// Tells the person running the pipeline, once, on standard error.
pub(crate) fn report(message: &str) {
    eprintln!("stageprof: {message}");
}
