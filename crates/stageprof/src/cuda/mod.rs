//! GPU profiling for pipelines that launch CUDA work (feature `cuda`).
//!
//! While a session runs with CUDA available, every stage and frame also
//! records a CUDA event at its begin and end on the thread's current stream
//! ([`use_stream`]; adjacent begins and ends share one), pushes its GPU instance number as a CUPTI external
//! correlation id (so each kernel, copy and memset names the stage that
//! launched it), mirrors itself as an NVTX range, and measures the GPU
//! memory allocated through [`GpuBuffer`]. A thread of the session's
//! resolves the events once the GPU has passed them, turns CUPTI's activity
//! records into profile records, and samples NVML counters: the pipeline
//! never waits for the GPU because of the profiler.
//!
//! Everything is loaded at run time: without a driver, CUPTI, NVTX or NVML,
//! the session says in one line what is missing and profiles the rest.

mod activity;
mod cupti_lib;
mod events;
mod kernel_frames;
mod memory;
mod nvml;
mod nvtx;
mod session;
pub(crate) mod stage_gpu;

pub(crate) use kernel_frames::FrameTrace;
pub use memory::{alloc_zeros, clone_htod, GpuBuffer};
pub(crate) use session::GpuSession;

use std::cell::Cell;
use std::sync::Arc;

use cudarc::driver::sys::CUstream;
use cudarc::driver::CudaStream;

thread_local! {
    /// The stream this thread's stages record their events on (null: the context's default).
    static STREAM: Cell<CUstream> = const { Cell::new(std::ptr::null_mut()) };
}

/// Makes `stream` the one this thread's stages time their GPU work on,
/// until the guard drops (then the previous one is current again). A stage
/// that begins on one stream and ends on another is timed to the later of
/// its ends on both, and the report's warnings name it.
pub fn use_stream(stream: &Arc<CudaStream>) -> StreamGuard {
    let previous = STREAM.with(|s| s.replace(stream.cu_stream()));
    StreamGuard { previous, _stream: stream.clone() }
}

/// Restores the previous stream when dropped; keeps the stream alive meanwhile.
#[must_use = "the stream is current until the guard drops"]
pub struct StreamGuard {
    previous: CUstream,
    _stream: Arc<CudaStream>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        STREAM.with(|s| s.set(self.previous));
    }
}

/// A raw CUDA stream handle.
pub(crate) type RawStream = CUstream;

/// Makes `stream` this thread's current stream (see [`crate::foreign::set_stream`]).
pub(crate) fn set_raw_stream(stream: RawStream) {
    STREAM.with(|s| s.set(stream));
}

fn current_stream() -> CUstream {
    STREAM.with(Cell::get)
}
