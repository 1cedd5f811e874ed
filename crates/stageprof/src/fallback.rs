//! When the native file cannot be written: with the `report` feature the
//! collector decodes and aggregates in memory instead, starting with
//! whatever had reached the disk, so nothing recorded is lost; without it
//! there is nothing to aggregate with, and the error says what is lost.

#[cfg(feature = "report")]
pub(crate) use with_report::{Fallback, InMemory};
#[cfg(not(feature = "report"))]
pub(crate) use without_report::{Fallback, InMemory};

#[cfg(feature = "report")]
mod with_report {
    use std::io::BufReader;
    use std::path::Path;

    use stageprof_analysis::Aggregator;
    use stageprof_model::ingest::gpu_join::GpuJoin;
    use stageprof_model::ingest::RecordDecoder;
    use stageprof_model::native::{Chunk, NativeReader};
    use stageprof_model::wire::{TickScale, WireError};
    use stageprof_model::{Catalog, RunInfo};

    /// A profile aggregated in memory.
    pub(crate) struct InMemory {
        pub catalog: Catalog,
        pub aggregator: Aggregator,
        pub run: RunInfo,
    }

    /// Decoding in the collector, used only when the native file fails.
    pub(crate) struct Fallback {
        decoder: RecordDecoder,
        aggregator: Aggregator,
    }

    impl Fallback {
        /// What this build does when the file fails, for the error line.
        pub(crate) const WHAT_HAPPENS: &str = "the pipeline goes on and the summary is computed in memory";

        /// Starts with nothing read yet (a bounded profile sums up every record as it comes).
        pub(crate) fn fresh(scale: TickScale) -> Option<Fallback> {
            let mut decoder = RecordDecoder::new(scale);
            decoder.nester.join_gpu(GpuJoin::live());
            Some(Fallback { decoder, aggregator: Aggregator::default() })
        }

        /// Starts, replaying what reached `native` before the write failed.
        pub(crate) fn start(scale: TickScale, catalog: &mut Catalog, native: &Path) -> Option<Fallback> {
            let mut live = Fallback::fresh(scale)?;
            let reader = std::fs::File::open(native).ok().map(BufReader::new).and_then(|r| NativeReader::new(r).ok());
            if let Some(mut chunks) = reader {
                // Reading stops at the chunk whose write failed; the caller still holds its words.
                while let Ok(Some(chunk)) = chunks.next_chunk() {
                    match chunk {
                        Chunk::Records { thread, words } => {
                            let _ = live.decoder.feed(catalog, thread, &words, &mut live.aggregator);
                        }
                        Chunk::Pass { began } => live.decoder.passed(began, catalog, &mut live.aggregator),
                        _ => {}
                    }
                }
            }
            Some(live)
        }

        pub(crate) fn feed(&mut self, catalog: &mut Catalog, thread: u32, words: &[u64]) -> Result<(), WireError> {
            self.decoder.feed(catalog, thread, words, &mut self.aggregator)
        }

        /// The latest time (ns since the start) of the records decoded so far.
        pub(crate) fn last_ns(&self) -> u64 {
            self.decoder.nester.last_ns()
        }

        /// Sums up the calls whose GPU results are in and the queue
        /// operations known to be in order (call after every thread's records
        /// were read in a pass that began at tick `pass_began`: see
        /// `GpuJoin::advance` for `gpu_memory_since_ticks`).
        pub(crate) fn release(&mut self, catalog: &Catalog, gpu_memory_since_ticks: u64, pass_began: u64) {
            let since = (gpu_memory_since_ticks > 0).then(|| self.decoder.scale.ns(gpu_memory_since_ticks));
            self.decoder.nester.release(catalog, since, &mut self.aggregator);
            self.decoder.passed(pass_began, catalog, &mut self.aggregator);
        }

        /// The summary's makings; GPU records no join took (kernels: the
        /// live join leaves them to the native file's reader) are said to be missing.
        pub(crate) fn finish(mut self, catalog: Catalog, end_ns: u64, mut run: RunInfo) -> Box<InMemory> {
            self.decoder.finish(&catalog, Some(end_ns), &mut self.aggregator);
            run.warnings.extend(self.decoder.join_warnings());
            Box::new(InMemory { catalog, aggregator: self.aggregator, run })
        }
    }
}

#[cfg(not(feature = "report"))]
mod without_report {
    use std::path::Path;

    use stageprof_model::wire::{TickScale, WireError};
    use stageprof_model::{Catalog, RunInfo};

    /// Never made: this build cannot aggregate.
    pub(crate) enum InMemory {}

    /// Never made: this build cannot aggregate.
    pub(crate) enum Fallback {}

    impl Fallback {
        pub(crate) const WHAT_HAPPENS: &str =
            "this build has no in-memory summary (stageprof's `report` feature), so what is recorded from now on is lost";

        pub(crate) fn fresh(_: TickScale) -> Option<Fallback> {
            None
        }

        pub(crate) fn start(_: TickScale, _: &mut Catalog, _: &Path) -> Option<Fallback> {
            None
        }

        pub(crate) fn feed(&mut self, _: &mut Catalog, _: u32, _: &[u64]) -> Result<(), WireError> {
            match *self {}
        }

        pub(crate) fn release(&mut self, _: &Catalog, _: u64, _: u64) {
            match *self {}
        }

        pub(crate) fn last_ns(&self) -> u64 {
            match *self {}
        }

        pub(crate) fn finish(self, _: Catalog, _: u64, _: RunInfo) -> Box<InMemory> {
            match self {}
        }
    }
}
