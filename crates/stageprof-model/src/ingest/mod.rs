//! Ingest: from raw events to the model's spans.
//!
//! Every producer goes through here: the recorder's collector and the native
//! reader decode records ([`decode::RecordDecoder`]) into the nester
//! ([`nest::Nester`]), which gives spans their stage paths, self time and
//! frame; GPU work is joined to the calls that launched it
//! ([`gpu_join`] for native profiles, [`gpu_work`] for the figures both
//! native and trace readers compute). Consumers (analysis, render) only see
//! the spans that come out.

pub mod decode;
pub mod gpu_join;
pub mod gpu_work;
pub mod item_origins;
pub mod memory_series;
pub mod native_input;
pub mod nest;
pub mod queue_order;

pub use decode::RecordDecoder;
pub use memory_series::{MemorySample, MemorySeries};
pub use native_input::{read_native, NativeProfile};
pub use nest::Nester;
