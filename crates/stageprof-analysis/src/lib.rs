//! Analysis: from profile events to the numbers a person reads.
//!
//! [`decode::RecordDecoder`] and [`nest::Nester`] turn raw begin/end records
//! into spans with stage paths and self time; [`aggregate::Aggregator`] folds
//! spans into per-stage and per-frame statistics in memory that does not grow
//! with the number of events; [`summary::Summary`] is the result every
//! renderer draws from. The recorder and `stageprof report` run this same
//! code, so their numbers agree by construction.

pub mod aggregate;
pub mod decode;
pub mod diff;
pub mod gpu_join;
pub mod gpu_work;
pub mod histogram;
pub mod memory_timeline;
pub mod monitor;
pub mod native_input;
pub mod nest;
pub mod ranks;
pub mod stats;
pub mod summary;
pub mod timeline;
pub mod trend;

pub use aggregate::Aggregator;
pub use decode::RecordDecoder;
pub use memory_timeline::{MemoryPeak, MemoryTimeline};
pub use native_input::{read_native, NativeProfile};
pub use nest::Nester;
pub use ranks::{compare_ranks, RankFigures, RankRow};
pub use stats::Samples;
pub use summary::{
    Bottleneck, CounterStats, FrameRecord, FrameStats, KernelStats, PerCall, PerFrame, RunInfo, StageStats, Summary,
    SCHEMA_VERSION,
};
pub use timeline::{Timeline, TimelineBox, Track, TrackTimeline};
