//! The profile model: what a recorded or imported profile is made of.
//!
//! Both front doors of stageprof (the in-process recorder and the trace
//! readers) speak this model, so analysis and rendering never need to know
//! where a profile came from. It has no dependencies, because the crate
//! pipelines link pulls it in.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod event;
pub mod host;
pub mod ingest;
pub mod native;
mod run;
pub mod warning;
pub mod wire;

pub use event::{
    Catalog, CopyKind, CounterSample, FrameGpu, GpuActivity, GpuMetrics, GpuWork, HostMem, LaunchShape, MemDelta,
    MemoryLevel, MemoryPool, NameId, PathEntry, PathId, ProfileSink, Span, SpanFlags, SpanKind, StageMetrics,
    ThreadInfo,
};
pub use host::HostInfo;
pub use run::RunInfo;
pub use warning::Warning;
