//! GPU results joined while recording (a bounded profile, the in-memory
//! fallback): the calls are held back until their CUDA event times and the
//! allocator's levels up to their end are in, and then get the figures a
//! reader of the whole file gives them, and the ones worked out here.
//!
//! The run: frames of 1,000 ns on thread 0, each with `upload` [100, 300),
//! `sweep` [300, 900) and `sweep/upload` [400, 500); every fifth nested
//! upload's begin event failed (untimed). The GPU thread writes each frame's
//! event times one frame late; the allocator's trace covers two frames in
//! three and is read (levels, then a mark) as each frame ends; or, as in a
//! program without frames, it stays on and is read as it goes (no gaps, and
//! many more levels: 200 small allocations in each sweep).

use std::collections::BTreeMap;
use std::io::Cursor;

use stageprof_analysis::{Aggregator, Summary};
use stageprof_model::ingest::gpu_join::GpuJoin;
use stageprof_model::ingest::native_input::{read_native, GPU_RECORDS_KEY};
use stageprof_model::ingest::RecordDecoder;
use stageprof_model::native::NativeWriter;
use stageprof_model::wire::{flag, gpu_memory_mark_words, gpu_memory_words, header, kind, TickScale};
use stageprof_model::{Catalog, ThreadInfo};

const FRAME: u32 = 0;
const UPLOAD: u32 = 1;
const SWEEP: u32 = 2;
const NAMES: [&str; 3] = ["frame", "upload", "sweep"];
const MAIN: u32 = 0;
const ALLOCATOR: u32 = 1;
const GPU: u32 = 2;
const FRAMES: u64 = 60;
const SCALE: TickScale = TickScale { ticks_per_second: 1_000_000_000, start_ticks: 0 };

/// One frame's records, by the thread that writes them.
struct FrameRecords {
    main: Vec<u64>,
    allocator: Vec<u64>,
    gpu: Vec<u64>,
}

/// How the allocator's trace runs.
#[derive(Clone, Copy, PartialEq)]
enum Trace {
    /// On for two frames in three, off between.
    Frames,
    /// On from the first frame to the end, read at each frame's end.
    Continuous,
}

fn traced(trace: Trace, f: u64) -> bool {
    trace == Trace::Continuous || f % 3 != 1
}

fn untimed_nested(f: u64) -> bool {
    f % 5 == 0
}

/// The instances of frame `f`'s calls: upload, sweep, nested upload.
fn instances(f: u64) -> [u64; 3] {
    [3 * f + 1, 3 * f + 2, 3 * f + 3]
}

fn elapsed(instance: u64) -> u64 {
    100 + 7 * instance
}

/// The allocated level at the start of frame `f` (each traced frame keeps `f` bytes more).
fn level_before(trace: Trace, f: u64) -> i64 {
    1_000_000 + (0..f).filter(|&g| traced(trace, g)).map(|g| g as i64).sum::<i64>()
}

fn reserved(f: u64) -> u64 {
    (f % 4 + 2) << 20
}

fn frame_records(trace: Trace, f: u64) -> FrameRecords {
    let t = f * 1000;
    let [up, sweep, nested] = instances(f);
    let link = |instance, timed: bool| [header(kind::GPU_LINK, if timed { 0 } else { flag::UNTIMED }, 0), instance];
    let mut main = vec![header(kind::BEGIN_FRAME, flag::SAMPLED, FRAME), t];
    main.extend([header(kind::BEGIN_STAGE, 0, UPLOAD), t + 100]);
    main.extend(link(up, true));
    main.extend([header(kind::END, 0, UPLOAD), t + 300]);
    main.extend([header(kind::BEGIN_STAGE, 0, SWEEP), t + 300]);
    main.extend(link(sweep, true));
    main.extend([header(kind::BEGIN_STAGE, 0, UPLOAD), t + 400]);
    main.extend(link(nested, !untimed_nested(f)));
    main.extend([header(kind::END, 0, UPLOAD), t + 500]);
    main.extend([header(kind::END, 0, SWEEP), t + 900]);
    main.extend([header(kind::END, 0, FRAME), t + 1000]);

    let mut gpu = Vec::new();
    for i in instances(f) {
        let timed = !(i == nested && untimed_nested(f));
        if timed {
            gpu.extend([header(kind::GPU_TIME, 0, 0), i, elapsed(i)]);
        }
    }
    // The end event of frame 7's sweep failed: written untimed.
    if f == 7 {
        let at = gpu.len() - 6;
        gpu[at] = header(kind::GPU_TIME, flag::UNTIMED, 0);
    }

    let mut allocator = Vec::new();
    if traced(trace, f) {
        let base = level_before(trace, f);
        let r = reserved(f);
        let level = |edge, at: u64, bytes: i64| gpu_memory_words(0, edge, t + at, bytes, r);
        if trace == Trace::Frames || f == 0 {
            allocator.extend(level(flag::TRACE_START, 50, base));
        }
        allocator.extend(level(0, 120, base + 500 + f as i64));
        allocator.extend(level(0, 250, base + 200 + f as i64));
        allocator.extend(level(0, 450, base + 1200 + f as i64));
        allocator.extend(level(0, 480, base + f as i64));
        if trace == Trace::Continuous {
            for i in 0..200 {
                allocator.extend(level(0, 600 + i, base + f as i64 + 64 * (1 - i as i64 % 2)));
            }
        }
        allocator.extend(level(flag::TRACE_END, 950, base + f as i64));
        allocator.extend(gpu_memory_mark_words(t + 950, trace == Trace::Frames, false));
    } else {
        allocator.extend(gpu_memory_mark_words(t + 999, true, false));
    }
    FrameRecords { main, allocator, gpu }
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for (i, n) in NAMES.iter().enumerate() {
        c.set_name(i as u32, n);
    }
    c
}

/// The whole run as a native file, read back by the file reader.
fn read_whole_file(trace: Trace) -> Summary {
    let mut w = NativeWriter::new(Vec::new()).unwrap();
    let meta = [("ticks_per_second", "1000000000"), ("start_ticks", "0"), (GPU_RECORDS_KEY, "true")];
    w.meta(&meta.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    w.names(0, NAMES.into_iter()).unwrap();
    for (index, name) in [(MAIN, "main"), (ALLOCATOR, "allocator"), (GPU, "stageprof-gpu")] {
        w.thread(&ThreadInfo { index, os_tid: u64::from(index) + 100, name: name.into() }).unwrap();
    }
    for f in 0..FRAMES {
        let r = frame_records(trace, f);
        w.records(MAIN, &r.main).unwrap();
        w.records(ALLOCATOR, &r.allocator).unwrap();
        w.records(GPU, &r.gpu).unwrap();
    }
    let done = gpu_memory_mark_words(FRAMES * 1000, true, true);
    w.records(ALLOCATOR, &done).unwrap();
    w.end(0, FRAMES * 1000, "finished").unwrap();
    let mut agg = Aggregator::default();
    let p = read_native(Cursor::new(w.into_inner()), &mut agg).unwrap();
    agg.summary(&p.catalog, p.run, 3)
}

/// The run fed as a recorder's collector sees it: per drain, a frame's
/// records from the main thread and the allocator, and the GPU thread's
/// event times of the frame before; then the held calls that are ready go out.
struct Live {
    decoder: RecordDecoder,
    catalog: Catalog,
    agg: Aggregator,
}

impl Live {
    fn new() -> Live {
        let mut decoder = RecordDecoder::new(SCALE);
        decoder.nester.join_gpu(GpuJoin::live());
        Live { decoder, catalog: catalog(), agg: Aggregator::default() }
    }

    fn feed(&mut self, thread: u32, words: &[u64]) {
        self.decoder.feed(&mut self.catalog, thread, words, &mut self.agg).unwrap();
    }

    /// The end of a drain; the allocator's levels have been written since time 0.
    fn release(&mut self) {
        self.decoder.nester.release(&self.catalog, Some(0), &mut self.agg);
    }

    fn finish(mut self) -> Summary {
        self.decoder.finish(&self.catalog, Some(FRAMES * 1000), &mut self.agg);
        let mut run = stageprof_model::RunInfo::default();
        run.warnings.extend(self.decoder.join_warnings());
        self.agg.summary(&self.catalog, run, 3)
    }

    fn calls(&self, path: &str) -> u64 {
        let s = self.agg.summary(&self.catalog, stageprof_model::RunInfo::default(), 3);
        s.stages.iter().find(|st| st.path.join("/") == path).map_or(0, |st| st.calls)
    }
}

/// The run fed live, the GPU's event times `gpu_lag` frames late.
fn live_run(trace: Trace, gpu_lag: usize) -> Summary {
    let mut live = Live::new();
    let mut late_gpu = std::collections::VecDeque::new();
    for f in 0..FRAMES {
        let r = frame_records(trace, f);
        live.feed(MAIN, &r.main);
        live.feed(ALLOCATOR, &r.allocator);
        late_gpu.push_back(r.gpu);
        if late_gpu.len() > gpu_lag {
            live.feed(GPU, &late_gpu.pop_front().unwrap());
        }
        live.release();
    }
    for gpu in late_gpu {
        live.feed(GPU, &gpu);
    }
    live.feed(ALLOCATOR, &gpu_memory_mark_words(FRAMES * 1000, true, true));
    live.release();
    live.finish()
}

/// Per stage: calls, event time, GPU memory peak, net, calls with memory, reserved.
fn figures(s: &Summary) -> BTreeMap<String, String> {
    s.stages
        .iter()
        .map(|st| {
            let f = (
                st.calls,
                st.gpu_event_ns,
                st.gpu_mem_peak_bytes,
                st.gpu_mem_net_bytes,
                st.gpu_mem_calls,
                st.gpu_reserved_bytes,
            );
            (st.path.join("/"), format!("{f:?}"))
        })
        .collect()
}

#[test]
fn joined_while_recording_the_figures_are_the_whole_files() {
    // With the GPU three frames behind, calls are still held when their
    // frame's levels could be forgotten: they must not be. With the trace
    // on throughout (12,000 levels), levels are forgotten without gaps.
    for trace in [Trace::Frames, Trace::Continuous] {
        let whole = read_whole_file(trace);
        for gpu_lag in [0, 1, 3] {
            assert_eq!(figures(&live_run(trace, gpu_lag)), figures(&whole), "GPU {gpu_lag} frames behind");
        }
    }
    let continuous = live_run(Trace::Continuous, 1);
    let upload = continuous.stages.iter().find(|st| st.path == ["upload"]).unwrap();
    assert_eq!(upload.gpu_mem_calls, Some(FRAMES), "every call covered");
    let whole = read_whole_file(Trace::Frames);
    let live = live_run(Trace::Frames, 1);
    assert_eq!(live.frames.count, FRAMES);
    assert!(live.run.warnings.is_empty(), "{:?}", live.run.warnings);
    let peaks =
        |s: &Summary| format!("{:?}", s.memory.iter().map(|m| (m.peak.bytes, m.peak.stage)).collect::<Vec<_>>());
    assert_eq!(peaks(&live), peaks(&whole));
}

#[test]
fn joined_while_recording_the_figures_are_the_ones_worked_out_here() {
    let s = live_run(Trace::Frames, 1);
    let stage = |path: &str| s.stages.iter().find(|st| st.path.join("/") == path).unwrap();
    let frames: Vec<u64> = (0..FRAMES).collect();
    let event_sum = |which: usize, skip: &dyn Fn(u64) -> bool| {
        frames.iter().filter(|&&f| !skip(f)).map(|&f| elapsed(instances(f)[which])).sum::<u64>()
    };
    let traced_frames: Vec<u64> = frames.iter().copied().filter(|&f| traced(Trace::Frames, f)).collect();
    let last_traced = *traced_frames.last().unwrap() as i64;

    let upload = stage("upload");
    assert_eq!(upload.calls, FRAMES);
    assert_eq!(upload.gpu_event_ns, Some(event_sum(0, &|_| false)));
    // Within [100, 300): up 500 + f, then down to 200 + f at the end.
    assert_eq!(upload.gpu_mem_calls, Some(traced_frames.len() as u64));
    assert_eq!(upload.gpu_mem_peak_bytes, Some(500 + last_traced as u64));
    assert_eq!(upload.gpu_mem_net_bytes, Some(traced_frames.iter().map(|&f| 200 + f as i64).sum()));
    assert_eq!(upload.gpu_reserved_bytes, traced_frames.iter().map(|&f| reserved(f)).max());

    let sweep = stage("sweep");
    assert_eq!(sweep.gpu_event_ns, Some(event_sum(1, &|f| f == 7)));
    // From 200 + f at 300: up to 1200 + f, back to f.
    assert_eq!(sweep.gpu_mem_peak_bytes, Some(1000));
    assert_eq!(sweep.gpu_mem_net_bytes, Some(-200 * traced_frames.len() as i64));

    let nested = stage("sweep/upload");
    assert_eq!(nested.calls, FRAMES);
    assert_eq!(nested.gpu_event_ns, Some(event_sum(2, &untimed_nested)));
    assert_eq!(
        (nested.gpu_mem_peak_bytes, nested.gpu_mem_net_bytes),
        (Some(1000), Some(-200 * traced_frames.len() as i64))
    );
}

#[test]
fn calls_wait_for_their_event_time_and_for_the_mark_after_their_end() {
    let mut live = Live::new();
    let frame0 = frame_records(Trace::Frames, 0);
    live.feed(MAIN, &frame0.main);
    live.release();
    assert_eq!(live.calls("upload"), 0, "held: no event time, no mark yet");
    live.feed(GPU, &frame0.gpu);
    live.release();
    assert_eq!(live.calls("upload"), 0, "held: the allocator's levels up to its end are not marked written");
    live.feed(ALLOCATOR, &frame0.allocator);
    live.release();
    assert_eq!(live.calls("upload"), 0, "held: a mark counts one drain later (levels of other threads may lag it)");
    live.release();
    assert_eq!((live.calls("upload"), live.calls("sweep/upload"), live.calls("sweep")), (1, 1, 1));

    // Frame 1 is untraced: its calls need their event times and the mark only.
    let frame1 = frame_records(Trace::Frames, 1);
    live.feed(MAIN, &frame1.main);
    live.feed(ALLOCATOR, &frame1.allocator);
    live.release();
    live.release();
    assert_eq!(live.calls("upload"), 1, "held: frame 1's event times are not in");
    live.feed(GPU, &frame1.gpu);
    live.release();
    assert_eq!(live.calls("upload"), 2);
    let s = live.finish();
    let upload = s.stages.iter().find(|st| st.path == ["upload"]).unwrap();
    assert_eq!(upload.gpu_mem_calls, Some(1), "frame 1 was not traced");
}

#[test]
fn with_no_producer_of_levels_only_event_times_are_waited_for() {
    let mut decoder = RecordDecoder::new(SCALE);
    decoder.nester.join_gpu(GpuJoin::live());
    let (mut catalog, mut agg) = (catalog(), Aggregator::default());
    let frame0 = frame_records(Trace::Frames, 0);
    let calls = |agg: &Aggregator, catalog: &Catalog| {
        let s = agg.summary(catalog, stageprof_model::RunInfo::default(), 3);
        (s.stages.iter().map(|st| st.calls).sum::<u64>(), s.frames.count)
    };
    decoder.feed(&mut catalog, MAIN, &frame0.main, &mut agg).unwrap();
    decoder.nester.release(&catalog, None, &mut agg);
    assert_eq!(calls(&agg, &catalog), (0, 0), "held for their event times");
    decoder.feed(&mut catalog, GPU, &frame0.gpu, &mut agg).unwrap();
    decoder.nester.release(&catalog, None, &mut agg);
    assert_eq!(calls(&agg, &catalog), (3, 1), "no allocator levels were waited for");
}
