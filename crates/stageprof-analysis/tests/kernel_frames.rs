//! Kernel tracing in some frames only (`kernel_every`): a stage's GPU work
//! figures come from its calls wholly inside a window where tracing was on,
//! and the report counts those calls and frames.

use std::io::Cursor;

use stageprof_analysis::{Aggregator, StageStats, Summary};
use stageprof_model::ingest::native_input::{read_native, GPU_RECORDS_KEY};
use stageprof_model::native::NativeWriter;
use stageprof_model::wire::{flag, header, kernel_trace_words, kind, GpuActivityRecord};
use stageprof_model::{GpuWork, ThreadInfo};

const FRAME: u32 = 0;
const WORK: u32 = 1;
const SIDE: u32 = 2;
const KERNEL: u32 = 3;

/// Frame `f` runs `[1000 f, 1000 f + 900)`; its `work` stage runs
/// `[1000 f + 100, 1000 f + 800)` and launches `f + 1` kernels of 20 ns, 50 ns apart.
const FRAMES: u64 = 4;

fn kernel(instance: u64, start: u64, end: u64) -> GpuActivityRecord {
    GpuActivityRecord {
        name: KERNEL,
        work: GpuWork::Kernel,
        instance,
        start_ticks: start,
        end_ticks: end,
        device: 0,
        stream: 7,
        bytes: 0,
        launch_ticks: None,
        shape: None,
    }
}

fn linked_begin(record_kind: u64, name: u32, ts: u64, instance: u64) -> [u64; 4] {
    let flags = if record_kind == kind::BEGIN_FRAME { flag::SAMPLED } else { 0 };
    [header(record_kind, flags, name), ts, header(kind::GPU_LINK, 0, 0), instance]
}

fn end(name: u32, ts: u64) -> [u64; 2] {
    [header(kind::END, 0, name), ts]
}

/// The kernels of frame `f`'s `work` call: `(start, end)`.
fn kernels_of(f: u64) -> Vec<(u64, u64)> {
    (0..=f).map(|k| (1000 * f + 200 + 50 * k, 1000 * f + 220 + 50 * k)).collect()
}

/// A profile of [`FRAMES`] frames on thread 0, and on thread 1 a `side`
/// call `[850, 1500)` that launches a kernel at `[860, 880)`; `windows`:
/// the KERNEL_TRACE records (`(ticks, on)`), written by the GPU thread.
fn profile(windows: &[(u64, bool)]) -> Vec<u8> {
    let mut main = Vec::new();
    let mut gpu = Vec::new();
    let mut add_kernel = |k: GpuActivityRecord| {
        let (words, len) = k.encode();
        gpu.extend_from_slice(&words[..len]);
    };
    for f in 0..FRAMES {
        let (frame_instance, work_instance) = (10 * f + 1, 10 * f + 2);
        main.extend(linked_begin(kind::BEGIN_FRAME, FRAME, 1000 * f, frame_instance));
        main.extend(linked_begin(kind::BEGIN_STAGE, WORK, 1000 * f + 100, work_instance));
        main.extend(end(WORK, 1000 * f + 800));
        main.extend(end(FRAME, 1000 * f + 900));
        for (start, stop) in kernels_of(f) {
            add_kernel(kernel(work_instance, start, stop));
        }
    }
    let mut side = Vec::from(linked_begin(kind::BEGIN_STAGE, SIDE, 850, 99));
    side.extend(end(SIDE, 1500));
    add_kernel(kernel(99, 860, 880));
    for &(ticks, on) in windows {
        gpu.extend(kernel_trace_words(ticks, on));
    }

    let mut w = NativeWriter::new(Vec::new()).unwrap();
    let meta = [("ticks_per_second", "1000000000"), ("start_ticks", "0"), (GPU_RECORDS_KEY, "true")];
    w.meta(&meta.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    w.names(0, ["frame", "work", "side", "kern"].into_iter()).unwrap();
    for (index, name) in [(0, "main"), (1, "side"), (2, "stageprof-gpu")] {
        w.thread(&ThreadInfo { index, os_tid: u64::from(index) + 100, name: name.into() }).unwrap();
    }
    w.records(0, &main).unwrap();
    w.records(1, &side).unwrap();
    w.records(2, &gpu).unwrap();
    w.end(0, 5000, "finished").unwrap();
    w.into_inner()
}

fn summary(windows: &[(u64, bool)]) -> Summary {
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(profile(windows)), &mut agg).unwrap();
    agg.summary(&p.catalog, p.run, 3)
}

fn stage<'a>(s: &'a Summary, name: &str) -> &'a StageStats {
    s.stages.iter().find(|st| st.name == name).unwrap_or_else(|| panic!("no stage {name}"))
}

/// Kernels and busy ns of `work` summed over `frames`, from the kernels as written.
fn truth(frames: &[u64]) -> (u64, u64) {
    let ks: Vec<(u64, u64)> = frames.iter().flat_map(|&f| kernels_of(f)).collect();
    (ks.len() as u64, ks.iter().map(|(s, e)| e - s).sum())
}

#[test]
fn only_calls_inside_a_traced_window_have_gpu_work_figures() {
    // Traced from the start through frame 0 (the side call starts inside but
    // ends after the off), then frame 2 alone, then frame 3 to the end of the file.
    let s = summary(&[(0, true), (950, false), (1990, true), (2950, false), (2990, true)]);
    let work = stage(&s, "work");
    let g = work.gpu.expect("work's traced calls");
    let (kernels, busy) = truth(&[0, 2, 3]);
    assert_eq!((g.kernels, g.busy_ns), (kernels, busy));
    assert_eq!(work.gpu_traced_calls, Some(3));
    assert_eq!(work.calls, FRAMES);
    assert_eq!(s.frames.gpu_traced, Some(3));
    // Straddling an off: its kernel ran while tracing was on, but its call was not wholly traced.
    let side = stage(&s, "side");
    assert_eq!((side.gpu, side.gpu_traced_calls), (None, None));
}

#[test]
fn without_windows_every_call_is_traced() {
    let s = summary(&[]);
    let work = stage(&s, "work");
    let (kernels, busy) = truth(&[0, 1, 2, 3]);
    assert_eq!(work.gpu.map(|g| (g.kernels, g.busy_ns)), Some((kernels, busy)));
    assert_eq!(work.gpu_traced_calls, Some(FRAMES));
    assert_eq!(s.frames.gpu_traced, Some(FRAMES));
    assert_eq!(stage(&s, "side").gpu.map(|g| g.kernels), Some(1));
}

#[test]
fn a_window_closed_by_a_repeated_off_runs_on_through_it() {
    // An off with no on since the last off extends the window it follows.
    let s = summary(&[(0, true), (950, false), (1950, false)]);
    assert_eq!(stage(&s, "work").gpu_traced_calls, Some(2));
    assert_eq!(stage(&s, "side").gpu_traced_calls, Some(1));
}
