//! The profile model: what a recorded or imported profile is made of.
//!
//! Both front doors of stageprof (the in-process recorder and the trace
//! readers) speak this model, so analysis and rendering never need to know
//! where a profile came from. Its parts: a [`Catalog`] of names, stage
//! paths and threads; [`Span`]s (a stage, frame or task call with its
//! [`StageMetrics`]), [`CounterSample`]s, [`GpuActivity`] and
//! [`MemoryLevel`]s, delivered to a [`ProfileSink`]; [`RunInfo`] with its
//! [`Warning`]s. [`wire`] and [`native`] are the recorder's file format, and
//! [`ingest`] turns records into spans for every producer. It has no
//! dependencies, because the crate pipelines link pulls it in.
//!
//! ```
//! use stageprof_model::{Catalog, CounterSample, ProfileSink, Span, SpanKind};
//!
//! /// A sink that keeps the longest call of each path.
//! #[derive(Default)]
//! struct Longest(Vec<(String, u64)>);
//!
//! impl ProfileSink for Longest {
//!     fn span(&mut self, span: &Span, catalog: &Catalog) {
//!         let path = span.path.map(|p| catalog.path_names(p).join("/")).unwrap_or_default();
//!         self.0.push((path, span.duration_ns()));
//!     }
//!     fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
//! }
//!
//! let mut catalog = Catalog::default();
//! catalog.set_name(0, "load");
//! let path = catalog.intern_path(None, 0);
//! let span = Span {
//!     thread: 0,
//!     kind: SpanKind::Stage,
//!     name: 0,
//!     path: Some(path),
//!     depth: 0,
//!     start_ns: 10,
//!     end_ns: 40,
//!     self_ns: 30,
//!     frame: None,
//!     metrics: Default::default(),
//!     flags: Default::default(),
//! };
//! let mut sink = Longest::default();
//! sink.span(&span, &catalog);
//! assert_eq!(sink.0, [("load".to_string(), 30)]);
//! ```

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
    MemoryLevel, MemoryPool, NameId, PathEntry, PathId, ProfileSink, QueueEvent, QueueOp, Span, SpanFlags, SpanKind,
    StageMetrics, ThreadInfo,
};
pub use host::HostInfo;
pub use run::{KeptPart, KeptRaw, RunInfo};
pub use warning::Warning;
