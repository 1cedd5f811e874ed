//! # stageprof
//!
//! Where a pipeline's time and memory go, stage by stage.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();
//!
//! fn main() {
//!     let session = stageprof::init(); // reads stageprof.toml and STAGEPROF*
//!     for _ in 0..10 {
//!         let _frame = stageprof::frame();
//!         let _s = stageprof::scope!("load");
//!         stageprof::counter!("queue_depth", 3);
//!     }
//!     session.finish(); // table on stderr; stageprof-out/{summary.json,trace.json,profile.stgp}
//! }
//! ```
//!
//! Costs, measured on a 2-core CI VM (docs/benchmarks.md): a `scope!` stage
//! (begin and end) about 20 ns when on, under 1 ns when off; a dynamic
//! `stage(&str)` adds a per-thread hash lookup of the name; `cpu_time = true`
//! adds two kernel clock reads (about 400 ns).
//!
//! This crate stays light: it writes JSON but parses none, and pulls in no
//! HTML, SQLite or CLI code.

#![warn(missing_docs, unreachable_pub)]

mod alloc;
mod bounded;
mod clock;
mod clock_map;
mod collector;
mod config;
mod cpu_time;
#[cfg(feature = "cuda")]
pub mod cuda;
mod fallback;
pub mod foreign;
mod live;
#[cfg(feature = "report")]
mod monitor;
mod names;
mod notice;
mod outputs;
mod profiler;
#[cfg(feature = "prometheus")]
mod prometheus;
pub mod queue;
mod recorder;
mod sampling;
mod signals;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

use std::sync::atomic::Ordering::Relaxed;

pub use alloc::{TrackingAllocator, PROCESS_FLUSH_BYTES};
pub use config::{Config, ConfigError, Format, GpuTrace, ENV_VARS};
pub use live::LiveSink;
pub use outputs::Report;
pub use profiler::{FrameGuard, Profiler, StageGuard};
#[cfg(feature = "report")]
pub use stageprof_analysis::monitor::{Alert, RollingStage};
#[cfg(feature = "report")]
pub use stageprof_analysis::Summary;
pub use stageprof_macros::profile;

use names::dynamic_name;
use profiler::{begin_stage, frame_of};
use recorder::{with_writer, Target, GLOBAL_RECORDING};

/// The global profiling session; outputs are written by [`Session::finish`]
/// or when it is dropped (also while a panic unwinds through it).
#[must_use = "the session writes its outputs when finished or dropped; keep it alive for the whole run"]
pub struct Session {
    profiler: Profiler,
}

impl Session {
    /// Stops recording and writes the outputs.
    pub fn finish(self) -> Report {
        self.finish_because("finish")
    }

    /// Like [`Session::finish`], saying why the run ended (the report's `end_reason`).
    pub fn finish_because(self, reason: &str) -> Report {
        signals::unwatch(&self.profiler);
        self.profiler.finish_because(reason)
    }

    /// The profiler behind the session.
    pub fn profiler(&self) -> &Profiler {
        &self.profiler
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        signals::unwatch(&self.profiler);
        let reason = if std::thread::panicking() { "panic" } else { "finish" };
        self.profiler.finish_because(reason);
    }
}

/// Starts the global session from `stageprof.toml` and `STAGEPROF*`
/// variables. An invalid setting is reported on stderr and leaves profiling off.
pub fn init() -> Session {
    match Config::load() {
        Ok(config) => init_with(config),
        Err(e) => {
            eprintln!("{e}; profiling is off");
            init_with(Config { enabled: false, ..Config::default() })
        }
    }
}

/// Starts the global session with `config`.
pub fn init_with(config: Config) -> Session {
    let profiler = Profiler::start_as(config, true, Vec::new());
    if profiler.is_enabled() {
        signals::watch(&profiler, profiler.config().signals);
    }
    Session { profiler }
}

/// Starts a stage named at run time; it ends when the guard drops. Prefer
/// [`scope!`] for fixed names: it skips the name lookup.
#[inline]
pub fn stage(name: &str) -> StageGuard {
    if !GLOBAL_RECORDING.load(Relaxed) {
        return StageGuard::off();
    }
    begin_dynamic(name)
}

// The recording paths are kept out of line, so that a disabled stage
// compiles to a load and a branch at the call site.
#[inline(never)]
fn begin_dynamic(name: &str) -> StageGuard {
    begin_stage(Target::Global, dynamic_name(name))
}

#[inline(never)]
fn begin_static(callsite: &'static names::Callsite) -> StageGuard {
    begin_stage(Target::Global, callsite.id())
}

/// Starts a frame (one iteration of the pipeline) of the global session.
pub fn frame() -> FrameGuard {
    if !GLOBAL_RECORDING.load(Relaxed) {
        return FrameGuard::off();
    }
    frame_of(Target::Global)
}

/// Turns the global session's recording on or off at run time.
pub fn set_enabled(on: bool) {
    if let Some(shared) = recorder::Shared::global() {
        if !shared.stop.load(Relaxed) {
            shared.set_enabled(on);
        }
    }
}

/// Whether the global session is recording now.
pub fn is_recording() -> bool {
    GLOBAL_RECORDING.load(Relaxed)
}

/// A stage with a fixed name: the cheapest way to mark one.
///
/// ```
/// let _s = stageprof::scope!("undistort");
/// ```
#[macro_export]
macro_rules! scope {
    ($name:expr) => {{
        static __STAGEPROF_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new($name);
        $crate::__private::stage_static(&__STAGEPROF_CALLSITE)
    }};
}

/// Records a sample of a counter or gauge (any number; stored as `f64`).
///
/// ```
/// stageprof::counter!("queue_depth", 4);
/// ```
#[macro_export]
macro_rules! counter {
    ($name:expr, $value:expr) => {{
        static __STAGEPROF_CALLSITE: $crate::__private::Callsite = $crate::__private::Callsite::new($name);
        $crate::__private::counter_static(&__STAGEPROF_CALLSITE, ($value) as f64)
    }};
}

#[doc(hidden)]
pub mod __private {
    use super::*;
    pub use crate::names::Callsite;

    #[inline(always)]
    pub fn stage_static(callsite: &'static Callsite) -> StageGuard {
        if !GLOBAL_RECORDING.load(Relaxed) {
            return StageGuard::off();
        }
        begin_static(callsite)
    }

    #[inline]
    pub fn counter_static(callsite: &'static Callsite, value: f64) {
        if GLOBAL_RECORDING.load(Relaxed) {
            with_writer(Target::Global, |w| w.counter(callsite.id(), value));
        }
    }
}
