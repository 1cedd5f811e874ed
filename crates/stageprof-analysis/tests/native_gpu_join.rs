//! GPU records of a native profile joined to the calls that launched them:
//! by GPU instance, and, for work launched from a thread with no stage open,
//! by launch time on the thread that owns the frames; GPU memory to the
//! calls the allocator's trace covered, kernels to those kernel tracing did.

use std::io::Cursor;

use stageprof_analysis::{Aggregator, StageStats, Summary};
use stageprof_model::ingest::native_input::{read_native, GPU_RECORDS_KEY};
use stageprof_model::native::NativeWriter;
use stageprof_model::wire::{flag, header, kernel_trace_words, kind, GpuActivityRecord};
use stageprof_model::{GpuWork, LaunchShape, ThreadInfo, Warning};

// Names.
const FRAME: u32 = 0;
const UPLOAD: u32 = 1;
const SWEEP: u32 = 2;
const KERNEL: u32 = 3;

const SHAPE: LaunchShape = LaunchShape { grid: [64, 1, 1], block: [256, 1, 1] };

/// A kernel from `instance` (0: none) running `[start, end)`, launched at `launched`. Ticks are ns.
fn kernel(instance: u64, start: u64, end: u64, launched: Option<u64>) -> GpuActivityRecord {
    GpuActivityRecord {
        name: KERNEL,
        work: GpuWork::Kernel,
        instance,
        start_ticks: start,
        end_ticks: end,
        device: 0,
        stream: 7,
        bytes: 0,
        launch_ticks: launched,
        shape: Some(SHAPE),
    }
}

fn begin(name: u32, ts: u64) -> [u64; 2] {
    [header(kind::BEGIN_STAGE, 0, name), ts]
}

/// A BEGIN followed by the GPU_LINK naming its GPU instance.
fn linked(words: [u64; 2], instance: u64) -> [u64; 4] {
    [words[0], words[1], header(kind::GPU_LINK, 0, 0), instance]
}

/// A native profile (1 GHz ticks from 0) of the names `names` and of
/// `threads` (thread `i`'s name and records), ending at `end_ticks`; its
/// meta says it holds GPU records, or not.
fn native_file(names: &[&str], threads: &[(&str, &[u64])], gpu_records: bool, end_ticks: u64) -> Vec<u8> {
    let mut w = NativeWriter::new(Vec::new()).unwrap();
    let meta = [
        ("ticks_per_second", "1000000000"),
        ("start_ticks", "0"),
        (GPU_RECORDS_KEY, if gpu_records { "true" } else { "" }),
    ];
    w.meta(&meta.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    w.names(0, names.iter().copied()).unwrap();
    for (index, (name, records)) in (0u32..).zip(threads) {
        w.thread(&ThreadInfo { index, os_tid: u64::from(index) + 100, name: (*name).into() }).unwrap();
        w.records(index, records).unwrap();
    }
    w.end(0, end_ticks, "finished").unwrap();
    w.into_inner()
}

fn end(name: u32, ts: u64) -> [u64; 2] {
    [header(kind::END, 0, name), ts]
}

/// Thread 0 runs a frame [0, 1000) holding `upload` [100, 300) (GPU
/// instance 1) and `sweep` [300, 900) (instance 2, with `upload` nested
/// again at [400, 500), instance 3). Thread 1 opens no stage and launches
/// three kernels; a third kernel is launched after the frame.
fn profile() -> Vec<u8> {
    profile_saying(true)
}

/// [`profile`], whose meta says it holds GPU records or not.
fn profile_saying(gpu_records: bool) -> Vec<u8> {
    let mut main = vec![header(kind::BEGIN_FRAME, flag::SAMPLED, FRAME), 0];
    main.extend(linked(begin(UPLOAD, 100), 1));
    main.extend(end(UPLOAD, 300));
    main.extend(linked(begin(SWEEP, 300), 2));
    main.extend(linked(begin(UPLOAD, 400), 3));
    main.extend(end(UPLOAD, 500));
    main.extend(end(SWEEP, 900));
    main.extend(end(FRAME, 1000));

    let mut gpu = Vec::new();
    for k in [
        kernel(1, 150, 250, Some(120)),
        // From thread 1, launched while `sweep`'s nested `upload` was open, then while only `sweep` was.
        kernel(0, 450, 480, Some(420)),
        kernel(0, 600, 700, Some(550)),
        kernel(0, 700, 750, Some(560)),
        // After the frame: nobody's.
        kernel(0, 1200, 1300, Some(1100)),
    ] {
        let (words, len) = k.encode();
        gpu.extend_from_slice(&words[..len]);
    }
    // `sweep` ended on another stream than it began on.
    gpu.extend([header(kind::GPU_TIME, flag::STREAM_CHANGED, 0), 2, 590]);
    let threads: [(&str, &[u64]); 3] = [("main", &main), ("worker", &[]), ("stageprof-gpu", &gpu)];
    native_file(&["frame", "upload", "sweep", "shifted"], &threads, gpu_records, 1400)
}

fn stage<'a>(s: &'a Summary, path: &str) -> &'a StageStats {
    s.stages.iter().find(|st| st.path.join("/") == path).unwrap_or_else(|| panic!("no stage {path}"))
}

#[test]
fn launches_from_stageless_threads_go_to_the_frame_threads_innermost_stage() {
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(profile()), &mut agg).unwrap();
    let s = agg.summary(&p.catalog, p.run, 3);

    let upload = stage(&s, "upload").gpu.unwrap();
    assert_eq!((upload.kernels, upload.busy_ns), (1, 100));
    let nested = stage(&s, "sweep/upload").gpu.unwrap();
    assert_eq!((nested.kernels, nested.busy_ns), (1, 30));
    let sweep = stage(&s, "sweep");
    let g = sweep.gpu.unwrap();
    // Its own two, the nested one's: busy [450,480) and [600,750); span 450..750.
    assert_eq!((g.kernels, g.self_busy_ns, g.busy_ns, g.span_ns), (3, 150, 180, 300));
    // The gap [480, 600): the next kernel was launched at 550, so 70 ns waited on the host.
    assert_eq!((g.idle_host_ns, g.idle_other_ns), (70, 50));
    assert_eq!(sweep.gpu_event_ns, Some(590));
    assert_eq!(sweep.top_kernels[0].shape, Some(SHAPE));
    assert_eq!(sweep.top_kernels[0].calls, 2);

    assert!(s.run.warnings.contains(&Warning::OutsideStages { count: 1, busy_ns: None }), "{:?}", s.run.warnings);
    let changed = Warning::StreamChanged { stage: "sweep".into(), count: 1 };
    assert!(s.run.warnings.contains(&changed), "{:?}", s.run.warnings);
    assert!(!s.run.warnings.iter().any(|w| matches!(w, Warning::GpuNotJoined { .. })), "{:?}", s.run.warnings);
}

/// GPU records that nothing joins (here: a file whose meta does not say it
/// has them, as the recorder's in-memory fallback sees every record) are
/// counted and said to be missing, never dropped in silence.
#[test]
fn gpu_records_that_are_not_joined_are_said_to_be_missing() {
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(profile_saying(false)), &mut agg).unwrap();
    let s = agg.summary(&p.catalog, p.run, 3);
    assert_eq!(stage(&s, "sweep").gpu, None);
    // Five kernels and one event time.
    let missing = Warning::GpuNotJoined { count: 6 };
    assert!(s.run.warnings.contains(&missing), "{:?}", s.run.warnings);
    assert!(missing.fix().unwrap().contains("output directory"));
}

/// With kernels traced, a stage under GPU profiling that launched nothing
/// is known to have launched nothing: its counts are 0 and it has no GPU
/// time, not even its CUDA events' (which only timed the stream idling
/// while the host worked). `upload` [100, 300) launched one kernel;
/// `host_only` [300, 900) none, its events 590 ns apart.
#[test]
fn a_traced_stage_that_launched_nothing_has_no_gpu_time() {
    use stageprof_analysis::figures::{GPU_BUSY, GPU_EVENTS, GPU_KERNELS};
    use stageprof_analysis::FigureValue;
    let mut main = vec![header(kind::BEGIN_FRAME, flag::SAMPLED, FRAME), 0];
    main.extend(linked(begin(UPLOAD, 100), 1));
    main.extend(end(UPLOAD, 300));
    main.extend(linked(begin(SWEEP, 300), 2));
    main.extend(end(SWEEP, 900));
    main.extend(end(FRAME, 1000));
    let (words, len) = kernel(1, 150, 250, Some(120)).encode();
    let mut gpu = words[..len].to_vec();
    gpu.extend([header(kind::GPU_TIME, 0, 0), 1, 180, header(kind::GPU_TIME, 0, 0), 2, 590]);
    let file = native_file(
        &["frame", "upload", "host_only", "shifted"],
        &[("main", &main), ("stageprof-gpu", &gpu)],
        true,
        1000,
    );

    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(file), &mut agg).unwrap();
    let s = agg.summary(&p.catalog, p.run, 3);
    let (upload, host_only) = (stage(&s, "upload"), stage(&s, "host_only"));
    assert_eq!(GPU_EVENTS.value(upload), Some(FigureValue::Unsigned(180)));
    assert_eq!(GPU_BUSY.value(upload), Some(FigureValue::Unsigned(100)));
    assert_eq!(host_only.launched_gpu_work(), Some(false));
    assert_eq!(GPU_KERNELS.value(host_only), Some(FigureValue::Unsigned(0)));
    assert_eq!((GPU_EVENTS.value(host_only), GPU_BUSY.value(host_only)), (None, None));
    // Recorded all the same, for whoever reads the stage's raw figures.
    assert_eq!(host_only.gpu_event_ns, Some(590));
}

/// GPU allocator levels from its trace, over two windows: `[0, 250]` then,
/// after the trace was off, `[600, 700]` read at 700 and continued to 950.
/// Thread 0 calls `upload` at [100, 200), [300, 400) and [650, 900), and
/// `sweep` at [620, 980) around the last one.
fn memory_profile() -> Vec<u8> {
    use stageprof_model::wire::gpu_memory_words;
    let mut main = Vec::new();
    for (s, e) in [(100, 200), (300, 400)] {
        main.extend(begin(UPLOAD, s));
        main.extend(end(UPLOAD, e));
    }
    main.extend(begin(SWEEP, 620));
    main.extend(begin(UPLOAD, 650));
    main.extend(end(UPLOAD, 900));
    main.extend(end(SWEEP, 980));
    let level = |edge, ts, allocated: i64, reserved| gpu_memory_words(0, edge, ts, allocated, reserved);
    let levels = [
        level(flag::TRACE_START, 0, 1000, 4096),
        level(0, 120, 1500, 4096),
        level(0, 150, 1200, 8192),
        level(flag::TRACE_END, 250, 1200, 8192),
        // [300, 400) ran untraced; so did whatever took the level to 2000.
        level(flag::TRACE_START, 600, 2000, 8192),
        level(0, 640, 2100, 8192),
        level(0, 700, 2600, 8192),
        level(flag::TRACE_END, 700, 2600, 8192),
        level(0, 800, 2400, 16384),
        level(flag::TRACE_END, 950, 2400, 16384),
    ];
    native_file(&["frame", "upload", "sweep"], &[("main", &main), ("allocator", &levels.concat())], true, 1000)
}

#[test]
fn gpu_memory_goes_to_the_calls_its_trace_covered() {
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(memory_profile()), &mut agg).unwrap();
    let s = agg.summary(&p.catalog, p.run, 3);
    // upload's first call: 1000 -> 1500 -> 1200; its second ran untraced;
    // its third (within the trace that went on through the read at 700): 2100 -> 2600 -> 2400.
    let upload = stage(&s, "upload");
    assert_eq!(upload.gpu_mem_calls, Some(1));
    assert_eq!((upload.gpu_mem_peak_bytes, upload.gpu_mem_net_bytes), (Some(500), Some(200)));
    assert_eq!(upload.gpu_reserved_bytes, Some(8192));
    let nested = stage(&s, "sweep/upload");
    assert_eq!(
        (nested.gpu_mem_calls, nested.gpu_mem_peak_bytes, nested.gpu_mem_net_bytes),
        (Some(1), Some(500), Some(300))
    );
    assert_eq!(nested.gpu_reserved_bytes, Some(16384));
    // sweep ends at 980, after the trace's last read: not covered.
    assert_eq!(stage(&s, "sweep").gpu_mem_calls, None);
    let gpu = s.memory.iter().find(|m| m.pool == stageprof_model::MemoryPool::Gpu).expect("a GPU memory track");
    assert_eq!(gpu.peak.bytes, 2600);
    assert_eq!(gpu.peak.stage.map(|i| s.stages[i].path.join("/")), Some("sweep/upload".to_string()));
}

/// Kernel tracing in some frames only (`kernel_every`): frame `f` runs
/// `[1000 f, 1000 f + 900)` and its `upload` call `[1000 f + 100, 1000 f +
/// 800)`, which launches `f + 1` kernels of 20 ns, 50 ns apart; thread 1's
/// `sweep` call `[850, 1500)` launches one at `[860, 880)`. `windows`: the
/// KERNEL_TRACE records (`(ticks, on)`), written by the GPU thread.
fn sampled_profile(windows: &[(u64, bool)]) -> Summary {
    const FRAMES: u64 = 4;
    let mut main = Vec::new();
    let mut gpu = Vec::new();
    let mut add_kernel = |k: GpuActivityRecord| {
        let (words, len) = k.encode();
        gpu.extend_from_slice(&words[..len]);
    };
    for f in 0..FRAMES {
        main.extend(linked([header(kind::BEGIN_FRAME, flag::SAMPLED, FRAME), 1000 * f], 10 * f + 1));
        main.extend(linked(begin(UPLOAD, 1000 * f + 100), 10 * f + 2));
        main.extend(end(UPLOAD, 1000 * f + 800));
        main.extend(end(FRAME, 1000 * f + 900));
        for (start, stop) in sampled_kernels(f) {
            add_kernel(kernel(10 * f + 2, start, stop, None));
        }
    }
    let mut side = Vec::from(linked(begin(SWEEP, 850), 99));
    side.extend(end(SWEEP, 1500));
    add_kernel(kernel(99, 860, 880, None));
    for &(ticks, on) in windows {
        gpu.extend(kernel_trace_words(ticks, on));
    }
    let threads: [(&str, &[u64]); 3] = [("main", &main), ("side", &side), ("stageprof-gpu", &gpu)];
    let file = native_file(&["frame", "upload", "sweep", "shifted"], &threads, true, 5000);
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(file), &mut agg).unwrap();
    agg.summary(&p.catalog, p.run, 3)
}

/// The kernels of frame `f`'s `upload` call: `(start, end)`.
fn sampled_kernels(f: u64) -> Vec<(u64, u64)> {
    (0..=f).map(|k| (1000 * f + 200 + 50 * k, 1000 * f + 220 + 50 * k)).collect()
}

/// Kernels and busy ns of `upload` summed over `frames`, from the kernels as written.
fn sampled_truth(frames: &[u64]) -> (u64, u64) {
    let ks: Vec<(u64, u64)> = frames.iter().flat_map(|&f| sampled_kernels(f)).collect();
    (ks.len() as u64, ks.iter().map(|(s, e)| e - s).sum())
}

#[test]
fn only_calls_inside_a_kernel_traced_window_have_gpu_work_figures() {
    // Traced from the start through frame 0 (`sweep` starts inside but ends
    // after the off), then frame 2 alone, then frame 3 to the end of the file.
    let s = sampled_profile(&[(0, true), (950, false), (1990, true), (2950, false), (2990, true)]);
    let upload = stage(&s, "upload");
    let g = upload.gpu.expect("upload's traced calls");
    assert_eq!((g.kernels, g.busy_ns), sampled_truth(&[0, 2, 3]));
    assert_eq!((upload.calls, upload.gpu_traced_calls), (4, Some(3)));
    assert_eq!(s.frames.gpu_traced, Some(3));
    // Straddling an off: its kernel ran while tracing was on, but its call was not wholly traced.
    let sweep = stage(&s, "sweep");
    assert_eq!((sweep.gpu, sweep.gpu_traced_calls), (None, None));
}

#[test]
fn without_kernel_trace_windows_every_call_is_traced() {
    let s = sampled_profile(&[]);
    let upload = stage(&s, "upload");
    assert_eq!(upload.gpu.map(|g| (g.kernels, g.busy_ns)), Some(sampled_truth(&[0, 1, 2, 3])));
    assert_eq!(upload.gpu_traced_calls, Some(4));
    assert_eq!(s.frames.gpu_traced, Some(4));
    assert_eq!(stage(&s, "sweep").gpu.map(|g| g.kernels), Some(1));
}

#[test]
fn a_kernel_trace_window_closed_twice_runs_on_through_the_first_off() {
    // An off with no on since the last off extends the window it follows.
    let s = sampled_profile(&[(0, true), (950, false), (1950, false)]);
    assert_eq!(stage(&s, "upload").gpu_traced_calls, Some(2));
    assert_eq!(stage(&s, "sweep").gpu_traced_calls, Some(1));
}
