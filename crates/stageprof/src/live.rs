//! Live sinks: whatever watches a profile while it is recorded.
//!
//! The collector thread reads the recording threads' blocks every 20 ms
//! anyway; when a profiler has sinks, it also decodes those records (with a
//! decoder of its own, so watching never disturbs what is recorded) and
//! hands every span and counter to each sink. The pipeline's threads never
//! see them. The live monitor and the Prometheus endpoint are sinks, and so
//! can be anything a pipeline brings ([`crate::Profiler::start_with_sinks`]),
//! as puffin's viewers are.

use stageprof_model::ingest::RecordDecoder;
use stageprof_model::wire::TickScale;
use stageprof_model::{Catalog, CounterSample, GpuActivity, MemoryLevel, ProfileSink, QueueEvent, Span};

/// A receiver of a profile as it is recorded, on the collector thread.
pub trait LiveSink: ProfileSink + Send {
    /// After each read of the threads' blocks (about every 20 ms), with the
    /// names and stage paths known so far.
    fn tick(&mut self, _catalog: &Catalog) {}
}

/// A profiler's sinks, and the decoder that feeds them.
pub(crate) struct LiveSinks {
    decoder: RecordDecoder,
    sinks: Vec<Box<dyn LiveSink>>,
}

impl LiveSinks {
    /// `None` without sinks: then nothing is decoded while recording.
    pub(crate) fn new(scale: TickScale, sinks: Vec<Box<dyn LiveSink>>) -> Option<LiveSinks> {
        (!sinks.is_empty()).then(|| LiveSinks { decoder: RecordDecoder::new(scale), sinks })
    }

    pub(crate) fn feed(&mut self, catalog: &mut Catalog, thread: u32, words: &[u64]) {
        // A malformed record is the recording's problem; the file keeps it and the report says so.
        let _ = self.decoder.feed(catalog, thread, words, &mut Fanout(&mut self.sinks));
    }

    /// After a pass over the threads' blocks that began at tick `pass_began`.
    pub(crate) fn tick(&mut self, catalog: &Catalog, pass_began: u64) {
        self.decoder.passed(pass_began, catalog, &mut Fanout(&mut self.sinks));
        for sink in &mut self.sinks {
            sink.tick(catalog);
        }
    }
}

/// Every event to every sink.
struct Fanout<'a>(&'a mut [Box<dyn LiveSink>]);

impl ProfileSink for Fanout<'_> {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        self.0.iter_mut().for_each(|s| s.span(span, catalog));
    }
    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        self.0.iter_mut().for_each(|s| s.counter(sample, catalog));
    }
    fn gpu_activity(&mut self, activity: &GpuActivity, catalog: &Catalog) {
        self.0.iter_mut().for_each(|s| s.gpu_activity(activity, catalog));
    }
    fn memory_level(&mut self, level: &MemoryLevel) {
        self.0.iter_mut().for_each(|s| s.memory_level(level));
    }
    fn queue(&mut self, event: &QueueEvent, catalog: &Catalog) {
        self.0.iter_mut().for_each(|s| s.queue(event, catalog));
    }
}

/// A sink that cannot exist: what a feature that is off offers.
#[cfg(all(feature = "report", not(feature = "prometheus")))]
pub(crate) enum NoSink {}

#[cfg(all(feature = "report", not(feature = "prometheus")))]
impl ProfileSink for NoSink {
    fn span(&mut self, _: &Span, _: &Catalog) {
        match *self {}
    }
    fn counter(&mut self, _: &CounterSample, _: &Catalog) {
        match *self {}
    }
}

#[cfg(all(feature = "report", not(feature = "prometheus")))]
impl LiveSink for NoSink {}
