//! Analysis: from the model's spans to the numbers a person reads.
//!
//! Producers (the recorder, `stageprof-readers`) turn raw events into spans
//! through `stageprof_model::ingest` and hand them to a sink. Here
//! [`Aggregator`] is that sink: it folds spans into per-stage and per-frame
//! statistics in memory that does not grow with the number of events, and
//! its [`Summary`] (stages as [`StageStats`], frames, counters, bottlenecks,
//! memory peaks) is what every renderer draws from. [`figures`] describes
//! each per-stage figure once; [`diff`], [`change_points`],
//! [`compare_ranks`] and the live [`monitor`] compare and watch summaries.
//! The recorder and `stageprof report` run this same code, so their numbers
//! agree by construction.
//!
//! ```
//! use stageprof_analysis::Aggregator;
//!
//! let trace = br#"{"traceEvents": [
//!     {"ph": "X", "name": "load", "ts": 0, "dur": 30, "pid": 1, "tid": 1},
//!     {"ph": "X", "name": "decode", "ts": 5, "dur": 10, "pid": 1, "tid": 1}]}"#;
//! let mut aggregator = Aggregator::default();
//! let profile = stageprof_readers::read_profile(&trace[..], &mut aggregator).unwrap();
//! let summary = aggregator.summary(&profile.catalog, profile.run, 3);
//! let load = &summary.stages[0];
//! assert_eq!((load.calls, load.wall_ns, load.self_ns), (1, 30_000, 20_000));
//! assert_eq!(summary.stages[1].path, ["load", "decode"]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod aggregate;
mod depth_series;
pub mod diff;
pub mod figures;
mod histogram;
mod memory_timeline;
pub mod monitor;
mod queues;
mod ranks;
mod stats;
mod summary;
mod timeline;
mod trend;

pub use aggregate::{Aggregator, FRAMES_PER_STAGE};
pub use figures::{FigureValue, StageFigure, Unit, STAGE_FIGURES};
pub use memory_timeline::{MemoryPeak, MemoryTimeline, MAX_POINTS};
pub use queues::{
    Pipeline, PipelineStage, QueueStats, Speedup, UndersizedQueue, DEPTH_POINTS, SPEEDUPS_PCT, UNDERSIZED_PCT,
};
pub use ranks::{compare_ranks, RankFigures, RankRow};
pub use stats::{DurationStats, Samples, EXACT_SAMPLES};
pub use summary::{
    Bottleneck, CounterStats, FrameRecord, FrameStats, KernelStats, LimitingStage, PerCall, PerFrame, StageStats,
    Summary, ThreadWall, HOST_MEM_NOTABLE_BYTES, SCHEMA_VERSION,
};
pub use timeline::{Timeline, TimelineBox, Track, TrackTimeline, MAX_BOXES_PER_TRACK};
pub use trend::{change_points, ChangePoint};
