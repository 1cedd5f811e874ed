//! The GPU side of a profiling session: what stages do at begin and end,
//! and the thread that resolves GPU results into profile records.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cudarc::driver::CudaContext;
use stageprof_model::wire::{flag, header, kernel_trace_words, kind, GpuActivityRecord, GPU_TIME_WORDS};

use super::activity::{self, Delivery, RawActivity};
use super::events::EventTimer;
use super::kernel_frames::KernelFrames;
use super::nvml::NvmlSampler;
use super::nvtx::Nvtx;
use super::stage_gpu::GpuState;
use crate::clock_map::{Anchor, ClockMap};
use crate::config::GpuTrace;
use crate::names::dynamic_name;
use crate::notice::report;
use crate::recorder::{with_writer, Shared, Target};

/// How often the session's thread looks for resolved events.
const POLL: Duration = Duration::from_millis(5);
/// Launches an activity record may trail the newest launch by.
const STALE_LAUNCHES: u32 = 1 << 20;
/// How often it asks CUPTI for filled buffers.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A running GPU session: its state and its thread.
pub(crate) struct GpuSession {
    pub state: Arc<GpuState>,
    thread: Option<JoinHandle<()>>,
}

impl GpuSession {
    /// Starts GPU profiling for `shared` as its config says, or says in one line why it cannot.
    pub(crate) fn start(shared: &Arc<Shared>) -> Option<GpuSession> {
        Self::start_with(shared, shared.config.gpu, shared.config.gpu_device)
    }

    /// Starts GPU profiling for `shared`: `trace` on `device`.
    pub(crate) fn start_with(shared: &Arc<Shared>, trace: GpuTrace, device: u32) -> Option<GpuSession> {
        let config = &shared.config;
        if trace == GpuTrace::Off {
            return None;
        }
        // SAFETY: only checks that the driver library loads; nothing else is called without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            report("no CUDA driver (libcuda.so) found; GPU profiling is off, the rest goes on");
            return None;
        }
        let ctx = match CudaContext::new(device as usize) {
            Ok(ctx) => ctx,
            Err(e) => {
                report(&format!("CUDA device {device} is unavailable ({e}); GPU profiling is off"));
                return None;
            }
        };
        let cupti = trace == GpuTrace::Kernels
            && match activity::start() {
                Ok(()) => true,
                Err(e) => {
                    report(&e);
                    false
                }
            };
        let nvtx = if config.nvtx {
            Nvtx::load().map_err(|e| report(&format!("{e}; stages are not mirrored to NVTX"))).ok()
        } else {
            None
        };
        let sampler =
            (config.nvml_sample_ms > 0).then(|| NvmlSampler::start(device).map_err(|e| report(&e)).ok()).flatten();
        let kernel_frames =
            (cupti && config.kernel_every != 1).then(|| KernelFrames::new(config.kernel_every, ctx.clone()));
        let state = Arc::new(GpuState {
            ctx,
            device,
            events: EventTimer::new(crate::clock::ns_to_ticks(super::events::SHARE_WITHIN_NS)),
            cupti: AtomicBool::new(cupti),
            kernel_frames,
            nvtx,
            next_instance: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            nvtx_names: Mutex::new(HashMap::new()),
        });
        let resolver = Resolver::new(state.clone(), shared.clone(), sampler);
        let thread = std::thread::Builder::new().name("stageprof-gpu".into()).spawn(move || resolver.run());
        match thread {
            Ok(t) => Some(GpuSession { state, thread: Some(t) }),
            Err(e) => {
                report(&format!("cannot start the GPU thread ({e}); GPU profiling is off"));
                if cupti {
                    activity::stop(|| {
                        let _ = state.ctx.synchronize();
                    });
                }
                None
            }
        }
    }

    /// Waits for the GPU to finish what stages launched, writes every result, and stops.
    pub(crate) fn finish(&mut self) {
        self.state.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                report("the GPU thread panicked; GPU results after that point are lost");
            }
        }
    }
}

/// An API call: the stage instance it ran in (from CUPTI's external
/// correlation record) and when it began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Launch {
    instance: Option<u64>,
    start_ns: Option<u64>,
}

/// CUPTI's activities joined to the API calls that launched them, by
/// correlation id, as their records come in.
#[derive(Default)]
struct LaunchJoin {
    /// What is known of each API call, by CUPTI correlation id. Calls that
    /// launch nothing (event records, allocations) leave entries no
    /// activity claims: those far behind the latest launch are dropped.
    launches: BTreeMap<u32, Launch>,
    /// Activities whose launch is not yet known.
    waiting: Vec<RawActivity>,
}

impl LaunchJoin {
    /// Takes `got`'s records and hands each activity whose launch is now
    /// known to `joined`, with its stage instance (0: none) and launch.
    /// `last`: nothing more of this attachment comes, so every activity
    /// goes out (an unknown launch as made outside any stage), and its
    /// correlation ids are forgotten (the next attachment's may start again).
    fn take(&mut self, got: Delivery, last: bool, mut joined: impl FnMut(&RawActivity, u64, Launch)) {
        for (correlation, instance) in got.external {
            self.launches.entry(correlation).or_default().instance = Some(instance);
        }
        for (correlation, ns) in got.api_starts {
            self.launches.entry(correlation).or_default().start_ns = Some(ns);
        }
        self.waiting.extend(got.activities);
        let mut keep = Vec::new();
        for a in std::mem::take(&mut self.waiting) {
            // A launch from a thread with no stage open has no external
            // correlation: it goes out with instance 0 and its launch
            // time, and the reader gives it to the stage open then on the
            // thread that owns the frames.
            let launch = self.launches.get(&a.correlation).copied().unwrap_or_default();
            let instance = match launch.instance {
                Some(i) => i,
                None if last || launch.start_ns.is_some() => 0,
                None => {
                    keep.push(a);
                    continue;
                }
            };
            self.launches.remove(&a.correlation);
            joined(&a, instance, launch);
        }
        self.waiting = keep;
        if last {
            self.launches.clear();
        } else if let Some(&newest) = self.launches.keys().next_back() {
            self.launches = self.launches.split_off(&newest.saturating_sub(STALE_LAUNCHES));
        }
    }
}

/// The session's thread: resolves events, joins CUPTI records to stages,
/// samples NVML, and writes all of it to the profile.
struct Resolver {
    state: Arc<GpuState>,
    shared: Arc<Shared>,
    sampler: Option<NvmlSampler>,
    clock: Option<ClockMap>,
    join: LaunchJoin,
    dropped_reported: bool,
}

impl Resolver {
    fn new(state: Arc<GpuState>, shared: Arc<Shared>, sampler: Option<NvmlSampler>) -> Resolver {
        let clock = state
            .cupti
            .load(Relaxed)
            .then(|| activity::while_attached(|| ClockMap::new(Anchor::now(activity::timestamp))))
            .flatten();
        Resolver { state, shared, sampler, clock, join: LaunchJoin::default(), dropped_reported: false }
    }

    fn run(mut self) {
        let (mut last_flush, mut last_sample) = (Instant::now(), Instant::now());
        // 0: no counter tracks (not a sample every round).
        let sample_every = (self.shared.config.nvml_sample_ms > 0)
            .then(|| Duration::from_millis(self.shared.config.nvml_sample_ms.into()));
        while !self.state.stop.load(Relaxed) {
            self.write_times(false);
            if self.state.cupti.load(Relaxed) && last_flush.elapsed() >= FLUSH_EVERY {
                activity::flush(false);
                self.write_activities(false);
                last_flush = Instant::now();
            }
            if sample_every.is_some_and(|every| last_sample.elapsed() >= every) {
                self.sample();
                last_sample = Instant::now();
            }
            std::thread::sleep(POLL);
        }
        // Finish: the GPU's remaining work is waited for, so nothing launched is lost.
        self.write_times(true);
        if self.state.cupti.load(Relaxed) {
            if let Some(k) = &self.state.kernel_frames {
                k.close();
            }
            let _ = self.state.ctx.synchronize();
            activity::flush(true);
            self.write_activities(true);
            // Stages still open stop touching CUPTI before it is handed back.
            self.state.cupti.store(false, Relaxed);
            activity::stop(|| {
                let _ = self.state.ctx.synchronize();
            });
        }
        if sample_every.is_some() {
            self.sample();
        }
    }

    fn write_times(&mut self, wait: bool) {
        if self.state.ctx.bind_to_thread().is_err() {
            return;
        }
        let device = self.state.device;
        for t in self.state.events.resolve(wait) {
            let changed = if t.stream_changed { flag::STREAM_CHANGED } else { 0 };
            let untimed = if t.ns.is_none() { flag::UNTIMED } else { 0 };
            let header = header(kind::GPU_TIME, changed | untimed, device);
            let words: [u64; GPU_TIME_WORDS] = [header, t.instance, t.ns.unwrap_or(0)];
            with_writer(Target::Instance(&self.shared), |w| w.record(&words));
        }
    }

    /// Writes the activities whose launching stage is known (`last`: all, unknown ones outside any stage).
    fn write_activities(&mut self, last: bool) {
        for (ticks, on) in self.state.kernel_frames.as_ref().map(KernelFrames::take_edges).unwrap_or_default() {
            with_writer(Target::Instance(&self.shared), |w| w.record(&kernel_trace_words(ticks, on)));
        }
        if let Some(clock) = &mut self.clock {
            activity::while_attached(|| clock.anchor(Anchor::now(activity::timestamp)));
        }
        let (ended, current) = activity::take();
        for whole in ended {
            // An attachment's last records: every launch of it is known now.
            self.write_delivery(whole, true);
        }
        self.write_delivery(current, last);
    }

    /// Writes what `got` and the activities still waiting make known (`last`: all of them).
    fn write_delivery(&mut self, got: Delivery, last: bool) {
        if got.dropped > 0 && !self.dropped_reported {
            self.dropped_reported = true;
            report(&format!("CUPTI dropped {} activity records (its buffers were full)", got.dropped));
        }
        let Some(clock) = &self.clock else { return };
        let shared = &self.shared;
        self.join.take(got, last, |a, instance, launch| {
            let record = GpuActivityRecord {
                name: a.name,
                work: a.work,
                instance,
                start_ticks: clock.ticks(a.start),
                end_ticks: clock.ticks(a.end.max(a.start)),
                device: a.device,
                stream: a.stream,
                bytes: a.bytes,
                launch_ticks: launch.start_ns.map(|ns| clock.ticks(ns)),
                shape: a.shape,
            };
            let (words, len) = record.encode();
            with_writer(Target::Instance(shared), |w| w.record(&words[..len]));
        });
    }

    fn sample(&mut self) {
        let shared = self.shared.clone();
        let emit = |name: &str, value: f64| {
            let id = dynamic_name(name);
            with_writer(Target::Instance(&shared), |w| w.counter(id, value));
        };
        if let Some(s) = &mut self.sampler {
            s.sample(|line| report(&line), emit);
        }
        if self.state.ctx.bind_to_thread().is_ok() {
            if let Ok((free, total)) = self.state.ctx.mem_get_info() {
                emit("gpu.device_used_bytes", (total - free) as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use stageprof_model::GpuWork;

    use super::*;

    fn kernel(correlation: u32, start: u64) -> RawActivity {
        RawActivity {
            correlation,
            work: GpuWork::Kernel,
            name: 0,
            start,
            end: start + 10,
            device: 0,
            stream: 7,
            bytes: 0,
            shape: None,
        }
    }

    /// `(correlation, instance, launch start)` of what `join` hands out for `got`.
    fn joined(join: &mut LaunchJoin, got: Delivery, last: bool) -> Vec<(u32, u64, Option<u64>)> {
        let mut out = Vec::new();
        join.take(got, last, |a, instance, launch| out.push((a.correlation, instance, launch.start_ns)));
        out
    }

    #[test]
    fn an_activity_waits_for_its_launch_and_each_attachment_keeps_its_own_ids() {
        let mut join = LaunchJoin::default();
        // Kernel 5 comes before its API records: it waits.
        let early = Delivery { activities: vec![kernel(5, 100)], ..Delivery::default() };
        assert_eq!(joined(&mut join, early, false), []);
        let rest = Delivery { external: vec![(5, 42)], api_starts: vec![(5, 90), (6, 95)], ..Delivery::default() };
        assert_eq!(joined(&mut join, rest, false), [(5, 42, Some(90))]);
        // The attachment ends: kernel 7's launch never came, so it goes out as outside any stage.
        let end = Delivery { activities: vec![kernel(7, 120)], ..Delivery::default() };
        assert_eq!(joined(&mut join, end, true), [(7, 0, None)]);
        // The next attachment's ids start again: id 6's old launch time must not be taken.
        let next = Delivery { activities: vec![kernel(6, 300)], external: vec![(6, 43)], ..Delivery::default() };
        assert_eq!(joined(&mut join, next, false), [(6, 43, None)]);
    }
}
