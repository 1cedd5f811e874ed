//! The collector thread: takes blocks from recording threads and appends
//! them, as they are, to the native file: a copy and a write per block, so
//! it keeps up with many recording threads on few cores.
//!
//! The numbers are computed at finish by reading that file back through the
//! same code as `stageprof report`. If the file cannot be written, the
//! collector falls back on [`crate::fallback`], decoding as it reads; a
//! bounded profile ([`crate::bounded`]) is decoded as it is read from the
//! start, and its file keeps only some of the raw events.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use stageprof_model::native::NativeWriter;
use stageprof_model::wire::{header, kind, TickScale};
use stageprof_model::RunInfo;
use stageprof_model::{Catalog, HostInfo, ThreadInfo};

use crate::bounded::Parts;
use crate::clock::{clock, ticks, unix_ns};
use crate::cpu_time::{current_rss_bytes, peak_rss_bytes};
use crate::fallback::{Fallback, InMemory};
use crate::live::{LiveSink, LiveSinks};
use crate::names;
use crate::notice::report;
use crate::recorder::{Block, Shared};

/// Thread index under which the collector records the process memory track.
const PROCESS_THREAD: u32 = u32::MAX;
const RSS_COUNTER: &str = "process RSS bytes";

/// What the collector hands back: where the profile is, and what went wrong
/// on the way (already reported on stderr).
pub(crate) struct Collected {
    pub recorded: Recorded,
    pub errors: Vec<String>,
}

/// Where the recorded profile ended up.
pub(crate) enum Recorded {
    /// Complete in the native file.
    File(PathBuf),
    /// Aggregated in memory as it was read: the file could not be written,
    /// or it is bounded (`RunInfo::bounded` says which parts were kept).
    Live(Box<InMemory>),
}

pub(crate) struct Collector {
    shared: Arc<Shared>,
    scale: TickScale,
    native: Option<NativeWriter<File>>,
    native_path: PathBuf,
    live: Option<Fallback>,
    /// Names and threads seen so far (needed to decode live).
    catalog: Catalog,
    names_known: usize,
    threads_known: usize,
    /// Per thread: the sequence number of the next block to read.
    next_seq: Vec<u64>,
    scratch: Vec<u64>,
    /// Whether records were read since the last pass was written.
    read_since_pass: bool,
    pub errors: Vec<String>,
    rss_name: u32,
    rss_every: Option<Duration>,
    last_rss: Instant,
    run: RunInfo,
    sinks: Option<LiveSinks>,
    /// With `max_disk_mb`: the native file's parts (and `live` sums up every record).
    parts: Option<Parts>,
    /// The clock's kind, for each part's meta.
    clock_kind: &'static str,
}

impl Collector {
    /// Opens the native file; a failure is reported and recording goes on
    /// live. `sinks` watch the profile as it is recorded.
    pub(crate) fn new(shared: Arc<Shared>, sinks: Vec<Box<dyn LiveSink>>) -> Collector {
        let c = clock();
        let scale = TickScale { ticks_per_second: c.ticks_per_second, start_ticks: ticks() };
        let dir = shared.config.output_dir.clone();
        let mut parts = shared.config.max_disk_mb.map(|mb| Parts::new(&dir, mb));
        let native_path = match parts.as_mut() {
            Some(parts) => parts.open(0),
            None => dir.join(stageprof_model::native::PROFILE_FILE),
        };
        let mut errors = Vec::new();
        let opened = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create output directory {}: {e}", dir.display()))
            .and_then(|_| {
                errors = crate::bounded::remove_earlier_profiles(&dir);
                File::create(&native_path)
                    .and_then(NativeWriter::new)
                    .map_err(|e| format!("cannot write {}: {e}", native_path.display()))
            });
        let run = RunInfo {
            source: crate::foreign::source(),
            start_unix_ns: unix_ns(),
            host: HostInfo::detect(),
            pid: std::process::id(),
            cpu_time: shared.cpu_time,
            memory_tracked: shared.memory,
            end_reason: "finish".into(),
            ..RunInfo::default()
        };
        let rss_every =
            (shared.config.rss_sample_ms > 0).then(|| Duration::from_millis(shared.config.rss_sample_ms.into()));
        let mut collector = Collector {
            rss_name: names::intern(RSS_COUNTER),
            shared,
            scale,
            native: None,
            native_path,
            catalog: Catalog::default(),
            names_known: 0,
            threads_known: 0,
            next_seq: Vec::new(),
            scratch: Vec::new(),
            read_since_pass: false,
            errors,
            rss_every,
            last_rss: Instant::now(),
            run,
            sinks: LiveSinks::new(scale, sinks),
            // A bounded profile is summed up as it is read: its file keeps only some of it.
            live: if parts.is_some() { Fallback::fresh(scale) } else { None },
            parts,
            clock_kind: c.kind,
        };
        let process =
            ThreadInfo { index: PROCESS_THREAD, os_tid: u64::from(collector.run.pid), name: "process".into() };
        collector.catalog.add_thread(process);
        match opened {
            Ok(native) => {
                collector.native = Some(native);
                collector.write_head();
            }
            Err(e) => collector.go_live(e),
        }
        collector
    }

    /// The start of a native file (or of a bounded file's part): its meta,
    /// the names and the threads known so far.
    fn write_head(&mut self) {
        let meta = self.meta();
        let names = names::names_from(0);
        let names = &names[..self.names_known.min(names.len())];
        let threads = self.catalog.threads().to_vec();
        self.write_native(|n| {
            n.meta(&meta)?;
            n.names(0, names.iter().map(|n| &**n))?;
            threads.iter().try_for_each(|t| n.thread(t))
        });
    }

    fn meta(&self) -> Vec<(String, String)> {
        let mut meta: Vec<(String, String)> = vec![
            ("stageprof_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("source".into(), self.run.source.clone()),
            ("clock".into(), self.clock_kind.into()),
            ("ticks_per_second".into(), self.scale.ticks_per_second.to_string()),
            ("start_ticks".into(), self.scale.start_ticks.to_string()),
            ("start_unix_ns".into(), self.run.start_unix_ns.to_string()),
            ("pid".into(), self.run.pid.to_string()),
            ("cpu_time".into(), self.run.cpu_time.to_string()),
            ("memory_tracked".into(), self.run.memory_tracked.to_string()),
        ];
        if let Some(rank) = crate::foreign::rank() {
            meta.push(("rank".into(), rank.to_string()));
        }
        if let Some(parts) = &self.parts {
            meta.push((stageprof_model::ingest::native_input::BOUNDED_PART_KEY.into(), parts.current().to_string()));
        }
        if cfg!(feature = "cuda") && self.shared.config.gpu != crate::config::GpuTrace::Off {
            meta.push((stageprof_model::ingest::native_input::GPU_RECORDS_KEY.into(), "true".into()));
        }
        meta.extend(self.run.host.to_pairs().into_iter().map(|(k, v)| (k.to_owned(), v)));
        meta
    }

    /// Runs until the profiler stops, then returns where the profile is.
    pub(crate) fn run(mut self) -> Collected {
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

    /// Reads every block that is ready, each thread's in order, and says
    /// when the pass began (`Chunk::Pass`), where it read anything.
    fn drain(&mut self) {
        let pass_began = ticks();
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
        if std::mem::take(&mut self.read_since_pass) {
            self.write_native(|n| n.pass(pass_began));
        }
        if let Some(live) = self.live.as_mut() {
            live.release(&self.catalog, self.shared.gpu_memory_since.load(Acquire), pass_began);
        }
        if let Some(sinks) = self.sinks.as_mut() {
            sinks.tick(&self.catalog, pass_began);
        }
    }

    /// Takes what `b` holds beyond what was taken before; `complete` if its writer is done with it.
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
        b.consumed.store(len, Relaxed);
        self.read_since_pass = true;
        let words = b.words[from..len].iter().map(|w| w.load(Relaxed));
        let written = self.native.is_some();
        if written {
            self.sync_names();
            self.write_native(|n| n.records_from(thread, words.clone()));
        }
        // Either live from the start, or the write above just failed and went live.
        if self.live.is_some() || self.sinks.is_some() {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend(words);
            self.decode_live(thread, &scratch);
            self.scratch = scratch;
        }
        // After the live decoding: a part ends at the time of the last record it holds.
        if written {
            self.next_part_if_full();
        }
    }

    /// Stores a thread's records: in the file, or decoded live.
    fn take_records(&mut self, thread: u32, words: &[u64]) {
        self.sync_names();
        self.write_native(|n| n.records(thread, words));
        self.decode_live(thread, words);
    }

    fn decode_live(&mut self, thread: u32, words: &[u64]) {
        if self.live.is_none() && self.sinks.is_none() {
            return;
        }
        self.sync_names();
        if let Some(sinks) = self.sinks.as_mut() {
            sinks.feed(&mut self.catalog, thread, words);
        }
        if let Some(live) = self.live.as_mut() {
            if let Err(e) = live.feed(&mut self.catalog, thread, words) {
                self.errors.push(format!("internal: undecodable record from thread {thread}: {}", e.message));
            }
        }
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
        if let Some(rss) = current_rss_bytes() {
            self.take_records(
                PROCESS_THREAD,
                &[header(kind::COUNTER, 0, self.rss_name), ticks(), (rss as f64).to_bits()],
            );
        }
    }

    /// Writes to the native file; on failure, says which path failed and goes on live.
    fn write_native(&mut self, f: impl FnOnce(&mut NativeWriter<File>) -> std::io::Result<()>) {
        let Some(native) = self.native.as_mut() else { return };
        if let Err(e) = f(native) {
            self.native = None;
            let reason = format!("cannot write {}: {e}", self.native_path.display());
            self.go_live(reason);
        }
    }

    /// Ends a full part of a bounded file and starts the next, deleting
    /// the parts that no longer fit.
    fn next_part_if_full(&mut self) {
        let (Some(parts), Some(native)) = (&self.parts, &self.native) else { return };
        if !parts.full(native.bytes_written()) {
            return;
        }
        // Names interned meanwhile go to the part that may use them.
        self.sync_names();
        // The part ends with its records, not when the collector, which may
        // run behind the recording threads, wrote them.
        let end_ns = self.live.as_ref().map_or_else(|| self.scale.ns(ticks()), Fallback::last_ns);
        let (dropped, end_ticks) = (self.shared.dropped.load(Relaxed), self.scale.ticks(end_ns));
        self.write_native(|n| n.end(dropped, end_ticks, "the next part"));
        let Some(native) = self.native.take() else { return };
        self.close_part(end_ns, native.bytes_written());
        let path = self.parts.as_mut().map(|p| p.open(end_ns));
        let Some(path) = path else { return };
        self.native_path = path;
        match File::create(&self.native_path).and_then(NativeWriter::new) {
            Ok(native) => {
                self.native = Some(native);
                self.write_head();
            }
            Err(e) => self.go_live(format!("cannot write {}: {e}", self.native_path.display())),
        }
    }

    /// Closes the part being written (`bytes` long, ending at `end_ns`) and deletes those that no longer fit.
    fn close_part(&mut self, end_ns: u64, bytes: u64) {
        let Some(parts) = self.parts.as_mut() else { return };
        for old in parts.close(end_ns, bytes) {
            if let Err(e) = std::fs::remove_file(&old) {
                self.errors.push(format!("cannot delete {} (a bounded profile's old part): {e}", old.display()));
            }
        }
    }

    /// Switches to the fallback, which first replays what reached the file.
    /// A bounded profile is summed up already: only its raw events stop.
    fn go_live(&mut self, reason: String) {
        if self.live.is_some() {
            report(&format!("{reason}; the raw events stop here, the figures go on"));
            self.errors.push(reason);
            return;
        }
        report(&format!("{reason}; {}", Fallback::WHAT_HAPPENS));
        self.errors.push(reason);
        self.live = Fallback::start(self.scale, &mut self.catalog, &self.native_path);
    }

    fn finish(mut self) -> Collected {
        let end_ticks = ticks();
        let dropped = self.shared.dropped.load(Relaxed);
        let reason = self.shared.end_reason();
        let peak_rss = peak_rss_bytes();
        let meta: Vec<(String, String)> =
            peak_rss.map(|p| ("peak_rss_bytes".into(), p.to_string())).into_iter().collect();
        self.write_native(|n| {
            n.meta(&meta)?;
            n.end(dropped, end_ticks, &reason)
        });
        if let Some(bytes) = self.native.as_ref().map(NativeWriter::bytes_written) {
            self.close_part(self.scale.ns(end_ticks), bytes);
        }
        self.run.bounded = self.parts.take().map(Parts::kept);
        self.shared.release_pool();
        let recorded = match self.live {
            None => Recorded::File(self.native_path),
            Some(live) => {
                let end_ns = self.scale.ns(end_ticks);
                let mut run = self.run;
                run.duration_ns = end_ns;
                run.dropped_records = dropped;
                run.end_reason = reason;
                run.peak_rss_bytes = peak_rss;
                Recorded::Live(live.finish(self.catalog, end_ns, run))
            }
        };
        Collected { recorded, errors: self.errors }
    }
}
