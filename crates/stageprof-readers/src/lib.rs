//! Readers of traces written by other tools, into stageprof's model.
//!
//! [`json_scan`] reads Chrome trace JSON (what torch.profiler, Kineto and
//! most tracers write) event by event, fast and forgiving of the damage
//! real files have.

pub mod json_scan;
