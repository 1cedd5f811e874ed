//! What a stage or frame does on the GPU side as it begins and ends:
//! a CUDA event on its stream, its CUPTI correlation id, an NVTX range,
//! a mark of the GPU allocator's level. The recorder calls this; it calls
//! nothing of the recorder's.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUstream;
use cudarc::driver::CudaContext;
use stageprof_model::MemDelta;

use super::activity;
use super::events::{Event, EventTimer, PendingTime};
use super::kernel_frames::{FrameTrace, KernelFrames};
use super::nvtx::Nvtx;
use crate::alloc::{LevelMark, GPU_LEVEL};

/// What stages of a session share of the GPU side.
pub(crate) struct GpuState {
    pub(super) ctx: Arc<CudaContext>,
    pub(super) device: u32,
    pub(super) events: EventTimer,
    pub(super) cupti: AtomicBool,
    /// Where kernels are traced in some frames only (`kernel_every` not 1).
    pub(super) kernel_frames: Option<KernelFrames>,
    pub(super) nvtx: Option<Nvtx>,
    pub(super) next_instance: AtomicU64,
    pub(super) stop: AtomicBool,
    /// NVTX names, made once per name id.
    pub(super) nvtx_names: Mutex<HashMap<u32, Arc<CString>>>,
}

/// A begun stage's GPU side, kept until its end.
pub(crate) struct GpuOpen {
    pub instance: u64,
    /// The CUPTI attachment it pushed its correlation id in, if it did.
    correlated: Option<u64>,
    start: Option<Arc<Event>>,
    /// The stream its start event went on.
    stream: CUstream,
    mem: Option<LevelMark>,
}

impl GpuOpen {
    /// Whether its begin event was recorded, so that a GPU time will name it.
    pub(crate) fn timed(&self) -> bool {
        self.start.is_some()
    }
}

impl GpuState {
    /// Called as a stage or frame begins: returns its instance number.
    pub(crate) fn begin(&self, name: u32, name_text: impl FnOnce() -> String, memory: bool) -> GpuOpen {
        let instance = self.next_instance.fetch_add(1, Relaxed);
        let correlated = self.cupti.load(Relaxed).then(|| activity::push_stage(instance)).flatten();
        if let Some(nvtx) = &self.nvtx {
            let text = self.nvtx_name(name, name_text);
            nvtx.push(&text);
        }
        let stream = super::current_stream();
        let start = self.bind().then(|| self.events.record(stream)).flatten();
        GpuOpen { instance, correlated, start, stream, mem: memory.then(|| GPU_LEVEL.mark()) }
    }

    /// Called as it ends: queues its timing; returns its GPU memory figures.
    pub(crate) fn end(&self, open: GpuOpen) -> Option<MemDelta> {
        if let Some(start) = open.start {
            let stream = super::current_stream();
            // Queued even where the end event failed: its GPU time is written as untimed,
            // and a reader summing up while recording waits for exactly one per timed instance.
            let end = self.bind().then(|| self.events.record(stream)).flatten();
            // Ended on another stream: its end on the first one counts too.
            let end_on_start_stream =
                end.as_ref().filter(|_| stream != open.stream).and_then(|_| self.events.record(open.stream));
            self.events.wait_for(PendingTime { instance: open.instance, start, end, end_on_start_stream });
        }
        if let Some(nvtx) = &self.nvtx {
            nvtx.pop();
        }
        if let Some(attachment) = open.correlated.filter(|_| self.cupti.load(Relaxed)) {
            activity::pop_stage(attachment);
        }
        open.mem.map(|m| GPU_LEVEL.measure(m))
    }

    /// A recorded frame begins: where kernels are traced in some frames
    /// only, what [`GpuState::kernel_frame_ends`] must be given at its end.
    pub(crate) fn kernel_frame_begins(&self) -> Option<FrameTrace> {
        self.kernel_frames.as_ref().filter(|_| self.cupti.load(Relaxed)).map(KernelFrames::frame_begins)
    }

    /// A frame for which [`GpuState::kernel_frame_begins`] said something ends.
    pub(crate) fn kernel_frame_ends(&self, frame: FrameTrace) {
        if let Some(k) = self.kernel_frames.as_ref().filter(|_| self.cupti.load(Relaxed)) {
            k.frame_ends(frame);
        }
    }

    fn bind(&self) -> bool {
        self.ctx.bind_to_thread().is_ok()
    }

    fn nvtx_name(&self, name: u32, text: impl FnOnce() -> String) -> Arc<CString> {
        let mut names = self.nvtx_names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .entry(name)
            .or_insert_with(|| Arc::new(CString::new(text().replace('\0', " ")).unwrap_or_default()))
            .clone()
    }
}
