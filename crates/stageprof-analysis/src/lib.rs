//! Analysis: from the model's spans to the numbers a person reads.
//!
//! Producers turn raw events into spans through `stageprof_model::ingest`;
//! here [`aggregate::Aggregator`] folds spans into per-stage and per-frame
//! statistics in memory that does not grow with the number of events, and
//! [`summary::Summary`] is the result every renderer draws from; diff,
//! trend, ranks and the live monitor compare and watch summaries. The
//! recorder and `stageprof report` run this same code, so their numbers
//! agree by construction.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod aggregate;
pub mod diff;
pub mod figures;
mod histogram;
mod memory_timeline;
pub mod monitor;
mod ranks;
mod stats;
mod summary;
mod timeline;
mod trend;

pub use aggregate::{Aggregator, FRAMES_PER_STAGE};
pub use figures::{FigureValue, StageFigure, Unit, STAGE_FIGURES};
pub use memory_timeline::{MemoryPeak, MemoryTimeline, MAX_POINTS};
pub use ranks::{compare_ranks, RankFigures, RankRow};
pub use stats::{DurationStats, Samples, EXACT_SAMPLES};
pub use summary::{
    Bottleneck, CounterStats, FrameRecord, FrameStats, KernelStats, PerCall, PerFrame, StageStats, Summary,
    SCHEMA_VERSION,
};
pub use timeline::{Timeline, TimelineBox, Track, TrackTimeline, MAX_BOXES_PER_TRACK};
pub use trend::{change_points, ChangePoint};
