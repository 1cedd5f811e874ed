//! The public face of the recorder: profilers, sessions and guards.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

#[cfg(feature = "report")]
use stageprof_analysis::monitor::{Alert, RollingStage};
use stageprof_model::wire::{flag, kind};

use crate::collector::{Collected, Collector};
use crate::config::Config;
use crate::live::LiveSink;
#[cfg(feature = "report")]
use crate::monitor::MonitorShared;
use crate::names::dynamic_name;
use crate::names::FRAME_NAME;
use crate::notice::report;
use crate::outputs::{self, Report};
use crate::recorder::{end_span, with_writer, OpenSpan, Shared, Target};

/// A stage in progress; the stage ends when the guard is dropped.
///
/// Guards are tied to the thread that made them (they are not `Send`).
#[must_use = "a stage ends when its guard is dropped; bind it with `let _stage = ...`"]
pub struct StageGuard {
    open: Option<OpenSpan>,
    _not_send: PhantomData<*const ()>,
}

impl StageGuard {
    pub(crate) const fn off() -> StageGuard {
        StageGuard { open: None, _not_send: PhantomData }
    }

    fn from(open: Option<OpenSpan>) -> StageGuard {
        StageGuard { open, _not_send: PhantomData }
    }

    /// Whether this stage is being recorded.
    pub fn is_recording(&self) -> bool {
        self.open.is_some()
    }
}

impl Drop for StageGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            end_span(open, std::thread::panicking());
        }
    }
}

/// One frame (iteration) of the pipeline. Sampling decides per frame
/// whether the stages inside it are recorded.
#[must_use = "a frame ends when its guard is dropped; bind it with `let _frame = ...`"]
pub struct FrameGuard {
    stage: StageGuard,
    shared: Option<Arc<Shared>>,
    /// The GPU side, where kernels are traced in some frames only (`kernel_every`).
    #[cfg(feature = "cuda")]
    kernels: Option<(Arc<crate::cuda::stage_gpu::GpuState>, crate::cuda::FrameTrace)>,
}

impl FrameGuard {
    pub(crate) const fn off() -> FrameGuard {
        FrameGuard {
            stage: StageGuard::off(),
            shared: None,
            #[cfg(feature = "cuda")]
            kernels: None,
        }
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.stage, StageGuard::off()));
        #[cfg(feature = "cuda")]
        if let Some((gpu, frame)) = self.kernels.take() {
            crate::alloc::untracked(|| gpu.kernel_frame_ends(frame));
        }
        if let Some(shared) = &self.shared {
            // Stages between frames are recorded again.
            shared.set_recording(shared.enabled.load(Relaxed));
        }
    }
}

#[inline(always)]
pub(crate) fn begin_stage(target: Target<'_>, name: u32) -> StageGuard {
    StageGuard::from(with_writer(target, |w| w.begin(kind::BEGIN_STAGE, 0, name)))
}

/// A profiler instance. Most pipelines use the global one through
/// [`crate::init`]; libraries and tests can make their own.
#[derive(Clone)]
pub struct Profiler {
    shared: Arc<Shared>,
    /// Live monitoring's alert handler and rolling figures, shared with its sink.
    #[cfg(feature = "report")]
    monitor: Arc<MonitorShared>,
    collector: Arc<Mutex<Option<JoinHandle<Collected>>>>,
    #[cfg(feature = "cuda")]
    gpu: Arc<Mutex<Option<crate::cuda::GpuSession>>>,
}

impl Profiler {
    /// Starts a profiler with `config`. Off (`enabled = false`) costs nothing
    /// and starts no thread.
    pub fn start(config: Config) -> Profiler {
        Self::start_as(config, false, Vec::new())
    }

    /// Like [`Profiler::start`], with `sinks` that receive every span and
    /// counter as it is recorded, on the collector thread ([`LiveSink`]).
    pub fn start_with_sinks(config: Config, sinks: Vec<Box<dyn LiveSink>>) -> Profiler {
        Self::start_as(config, false, sinks)
    }

    pub(crate) fn start_as(config: Config, global: bool, sinks: Vec<Box<dyn LiveSink>>) -> Profiler {
        let enabled = config.enabled;
        #[cfg(feature = "report")]
        let monitor = Arc::new(MonitorShared::default());
        let shared = Shared::new(config, global);
        let mut handle = None;
        if enabled {
            crate::clock::clock();
            #[cfg(feature = "report")]
            let sinks = sinks.into_iter().chain(crate::monitor::sinks(&shared.config, &monitor)).collect();
            let collector = Collector::new(shared.clone(), sinks);
            let spawned = std::thread::Builder::new().name("stageprof-collector".into()).spawn(move || collector.run());
            match spawned {
                Ok(h) => {
                    let _ = shared.collector.set(h.thread().clone());
                    handle = Some(h);
                }
                Err(e) => report(&format!("cannot start the collector thread ({e}); profiling is off")),
            }
        }
        #[cfg(feature = "cuda")]
        let gpu = handle
            .as_ref()
            .filter(|_| !shared.config.gpu_on_demand)
            .and_then(|_| crate::cuda::GpuSession::start(&shared));
        #[cfg(feature = "cuda")]
        if let Some(g) = &gpu {
            let _ = shared.gpu.set(g.state.clone());
        }
        if global {
            shared.install_global();
        }
        shared.set_enabled(handle.is_some());
        Profiler {
            shared,
            #[cfg(feature = "report")]
            monitor,
            collector: Arc::new(Mutex::new(handle)),
            #[cfg(feature = "cuda")]
            gpu: Arc::new(Mutex::new(gpu)),
        }
    }

    /// Starts GPU profiling now (`trace` on `device`), for a profiler started
    /// before its pipeline initialized CUDA; returns whether it runs. A second
    /// call, or one on a profiler that is off, does nothing.
    #[cfg(feature = "cuda")]
    pub fn start_gpu(&self, trace: crate::GpuTrace, device: u32) -> bool {
        let mut gpu = self.gpu.lock().unwrap_or_else(PoisonError::into_inner);
        if gpu.is_some() || !self.is_enabled() {
            return gpu.is_some();
        }
        *gpu = crate::cuda::GpuSession::start_with(&self.shared, trace, device);
        if let Some(g) = gpu.as_ref() {
            let _ = self.shared.gpu.set(g.state.clone());
        }
        gpu.is_some()
    }

    /// A profiler that records nothing.
    pub fn disabled() -> Profiler {
        Self::start(Config { enabled: false, ..Config::default() })
    }

    #[cfg(feature = "tracing")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether both handles refer to the same profiler.
    pub fn same_as(&self, other: &Profiler) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Turns recording on or off at run time (no effect once finished).
    pub fn set_enabled(&self, on: bool) {
        if !self.shared.stop.load(Relaxed) {
            self.shared.set_enabled(on);
        }
    }

    /// Whether it records.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Relaxed)
    }

    /// Starts a stage with a name known only at run time (see [`crate::stage`]).
    #[inline]
    pub fn stage(&self, name: &str) -> StageGuard {
        if !self.shared.recording.load(Relaxed) {
            return StageGuard::off();
        }
        begin_stage(Target::Instance(&self.shared), dynamic_name(name))
    }

    /// Starts a frame (see [`crate::frame`]).
    pub fn frame(&self) -> FrameGuard {
        if !self.shared.enabled.load(Relaxed) {
            return FrameGuard::off();
        }
        frame_of(Target::Instance(&self.shared))
    }

    /// Calls `f` on the collector thread for every live-monitoring alert (slow
    /// frame, memory pressure), besides the log line on stderr; needs
    /// `monitor_window` in the config. A later call replaces the handler.
    #[cfg(feature = "report")]
    pub fn on_alert(&self, f: impl Fn(&Alert) + Send + Sync + 'static) {
        self.monitor.set_handler(Arc::new(f));
    }

    /// Each stage's mean and p95 over the last `monitor_window` frames, as of
    /// the collector's last look (every 20 ms); empty without live monitoring.
    #[cfg(feature = "report")]
    pub fn rolling_stats(&self) -> Vec<RollingStage> {
        self.monitor.rolling()
    }

    /// Where the Prometheus endpoint listens (the `prometheus` feature and `prometheus_port`).
    #[cfg(feature = "report")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.monitor.metrics_addr.get().copied()
    }

    /// Records a counter sample (see [`crate::counter!`]).
    pub fn counter(&self, name: &str, value: f64) {
        if self.shared.recording.load(Relaxed) {
            let id = dynamic_name(name);
            with_writer(Target::Instance(&self.shared), |w| w.counter(id, value));
        }
    }

    /// Stops recording, writes the configured outputs and returns what they say.
    /// Later calls return an empty report.
    pub fn finish(&self) -> Report {
        self.finish_because("finish")
    }

    /// Like [`Profiler::finish`], saying why the run ended (`SIGINT`,
    /// `exception`, ...: the report's `end_reason`), for callers that caught
    /// the signal or the exit themselves.
    pub fn finish_because(&self, reason: &str) -> Report {
        let Some(handle) = self.collector.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return Report::default();
        };
        self.shared.set_end_reason(reason);
        self.shared.set_enabled(false);
        // The GPU thread writes what the GPU still owes before the collector's last read.
        #[cfg(feature = "cuda")]
        if let Some(mut gpu) = self.gpu.lock().unwrap_or_else(PoisonError::into_inner).take() {
            gpu.finish();
        }
        self.shared.stop.store(true, Release);
        self.shared.uninstall_global();
        handle.thread().unpark();
        match handle.join() {
            Ok(collected) => outputs::write(&self.shared.config, collected),
            Err(_) => Report { errors: vec!["the collector thread panicked; no outputs".into()], ..Report::default() },
        }
    }
}

/// Begins a frame: counts it, decides whether it is sampled, and switches
/// stage recording for its duration.
pub(crate) fn frame_of(target: Target<'_>) -> FrameGuard {
    with_writer(target, |w| {
        let shared = w.shared.clone();
        if !shared.enabled.load(Relaxed) {
            return None;
        }
        let index = shared.frames.fetch_add(1, Relaxed);
        let sampled = shared.sampling.sampled(index);
        let flags = if sampled { flag::SAMPLED } else { 0 };
        // Kernel tracing goes on before the frame begins, so that the whole frame is inside.
        #[cfg(feature = "cuda")]
        let kernels = shared.gpu.get().filter(|_| sampled).and_then(|g| {
            // The state is cloned only where kernels are traced in some frames: not on every frame.
            let frame = crate::alloc::untracked(|| g.kernel_frame_begins())?;
            Some((g.clone(), frame))
        });
        let stage = StageGuard::from(w.begin(kind::BEGIN_FRAME, flags, FRAME_NAME));
        shared.set_recording(sampled);
        Some(FrameGuard {
            stage,
            shared: Some(shared),
            #[cfg(feature = "cuda")]
            kernels,
        })
    })
    .unwrap_or(FrameGuard::off())
}
