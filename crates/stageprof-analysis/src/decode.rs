//! Decoding recorder records (live, or read from a native file) into the
//! nester, in nanoseconds.

use std::collections::HashMap;

use stageprof_model::wire::{self, Record, TickScale, WireError};
use stageprof_model::{Catalog, CounterSample, MemDelta, ProfileSink, SpanKind, StageMetrics};

use crate::nest::Nester;

/// Feeds record words of each thread, in the order they were written, to a [`Nester`].
pub struct RecordDecoder {
    pub scale: TickScale,
    pub nester: Nester,
    /// Per thread: process-wide figures waiting for the END they precede.
    process: HashMap<u32, MemDelta>,
}

impl RecordDecoder {
    pub fn new(scale: TickScale) -> Self {
        RecordDecoder { scale, nester: Nester::default(), process: HashMap::new() }
    }

    /// Decodes `words` written by `thread`. On malformed input, everything
    /// before the bad record has been delivered.
    pub fn feed(
        &mut self,
        catalog: &mut Catalog,
        thread: u32,
        words: &[u64],
        sink: &mut dyn ProfileSink,
    ) -> Result<(), WireError> {
        let scale = self.scale;
        let nester = &mut self.nester;
        let process = &mut self.process;
        wire::decode(words, |record| match record {
            Record::Begin { name, ticks, frame, sampled } => {
                let kind = if frame { SpanKind::Frame } else { SpanKind::Stage };
                nester.begin(catalog, thread, kind, name, scale.ns(ticks), sampled);
            }
            Record::End { name, ticks, unwound, cpu_ns, mem } => {
                let metrics =
                    StageMetrics { cpu_ns, mem, process_mem: process.remove(&thread), ..StageMetrics::default() };
                nester.end(catalog, thread, name, scale.ns(ticks), metrics, unwound, sink);
            }
            Record::ProcessMem { peak_bytes, net_bytes, end_bytes } => {
                process.insert(thread, MemDelta { peak_bytes, net_bytes, end_bytes });
            }
            Record::Counter { name, ticks, value } => {
                sink.counter(&CounterSample { name, thread, ts_ns: scale.ns(ticks), value }, catalog);
            }
        })
    }
}
