//! Joining the GPU records of a native profile to the calls that launched them.
//!
//! The recorder tags every stage and frame that runs while CUDA profiling is
//! on with a GPU instance number; CUDA event times and CUPTI activities name
//! that number. They resolve only once the GPU has done the work, so they
//! reach the file after the call's end: the native reader collects them in a
//! first pass ([`GpuLedger`]), and the nester joins them to each call as it
//! closes. A call's figures include its nested calls', as for trace readers.

use std::collections::HashMap;

use stageprof_model::wire::{Record, TickScale};
use stageprof_model::{Catalog, GpuActivity, GpuMetrics, PathId, ProfileSink};

use crate::gpu_work::{summarize, Activity, IdleContext};

/// GPU records of a profile, by the instance that launched them.
#[derive(Default)]
pub struct GpuLedger {
    activities: Vec<Activity>,
    own: HashMap<u64, Vec<u32>>,
    event_ns: HashMap<u64, u64>,
}

impl GpuLedger {
    /// Takes a record if it is a GPU result; timestamps in ticks become ns.
    pub fn add(&mut self, record: &Record, scale: TickScale) {
        match *record {
            Record::GpuTime { instance, elapsed_ns, .. } => {
                self.event_ns.insert(instance, elapsed_ns);
            }
            Record::GpuActivity { name, work, instance, start_ticks, end_ticks, device, stream, bytes } => {
                let ns = |t| scale.ns(t).min(i64::MAX as u64) as i64;
                self.own.entry(instance).or_default().push(self.activities.len() as u32);
                self.activities.push(Activity {
                    correlation: instance as i64,
                    device,
                    stream,
                    work,
                    name,
                    start: ns(start_ticks),
                    end: ns(end_ticks),
                    bytes,
                });
            }
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.activities.is_empty() && self.event_ns.is_empty()
    }
}

/// The ledger, consumed call by call as calls close.
pub struct GpuJoin {
    ledger: GpuLedger,
    idle: IdleContext,
    scratch: Vec<(i64, i64, Option<i64>)>,
}

/// What a closing call carries of GPU work: its own instance, and the
/// activities of its nested calls, handed up as they close.
#[derive(Default)]
pub struct CallGpu {
    pub instance: Option<u64>,
    pub nested: Vec<u32>,
}

impl GpuJoin {
    pub fn new(ledger: GpuLedger) -> GpuJoin {
        // Launch times are not recorded: idle gaps count as "other".
        let idle = IdleContext::new(Vec::new(), &[]);
        GpuJoin { ledger, idle, scratch: Vec::new() }
    }

    /// The figures of a closing call launched from `path` (`None`: a frame);
    /// its own activities go to `sink`. Returns the GPU figures, its event
    /// time, and the activities its parent inherits.
    pub fn close(
        &mut self,
        call: CallGpu,
        path: Option<PathId>,
        catalog: &Catalog,
        sink: &mut dyn ProfileSink,
    ) -> (Option<GpuMetrics>, Option<u64>, Vec<u32>) {
        let own = call.instance.and_then(|i| self.ledger.own.remove(&i)).unwrap_or_default();
        let event_ns = call.instance.and_then(|i| self.ledger.event_ns.remove(&i));
        for &a in &own {
            sink.gpu_activity(&self.activity(a, path), catalog);
        }
        let mut all = call.nested;
        if all.is_empty() && own.is_empty() {
            return (None, event_ns, all);
        }
        let self_busy = summarize(&own, &self.ledger.activities, &self.idle, &mut self.scratch).busy_ns;
        all.extend(own);
        let mut m = summarize(&all, &self.ledger.activities, &self.idle, &mut self.scratch);
        m.self_busy_ns = self_busy;
        (Some(m), event_ns, all)
    }

    /// Activities no closed call claimed (launched outside every stage, or
    /// by a call whose records were lost) go to `sink` with no stage.
    pub fn finish(&mut self, catalog: &Catalog, sink: &mut dyn ProfileSink) -> usize {
        let left: Vec<u32> = self.ledger.own.drain().flat_map(|(_, v)| v).collect();
        for &a in &left {
            sink.gpu_activity(&self.activity(a, None), catalog);
        }
        left.len()
    }

    fn activity(&self, i: u32, path: Option<PathId>) -> GpuActivity {
        let a = &self.ledger.activities[i as usize];
        GpuActivity {
            path,
            name: a.name,
            work: a.work,
            device: a.device,
            stream: a.stream,
            start_ns: a.start.max(0) as u64,
            end_ns: a.end.max(a.start).max(0) as u64,
            bytes: a.bytes,
        }
    }
}
