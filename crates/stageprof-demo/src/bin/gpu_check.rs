//! Checks stageprof's CUDA figures against ground truth on a real GPU, and
//! times its overhead (scripts/gpu_check.sh runs both).
//!
//! `gpu_check accuracy OUT_DIR [KERNEL_EVERY]`: a pipeline of known work
//! (copies of known size, a known number of kernels, buffers of known size)
//! with CUDA events placed by hand inside every stage; stageprof's per-stage
//! figures must match (with kernels traced in 1 of every KERNEL_EVERY
//! frames, default 1, the kernel figures over the traced calls). Prints one
//! line per check and exits 1 if any fails.
//!
//! `gpu_check overhead off|events|kernels|kernels-all FRAMES`: a GPU pipeline
//! of many short kernels, timed with profiling in the given mode (kernels:
//! traced in as many frames as keep the cost within tracing's share of the
//! run, the default; kernels-all: in every frame); prints the seconds.
//!
//! `gpu_check paired FRAMES`: the same pipeline with events mode switched
//! on and off frame by frame; prints the median cost against the off frames.
//!
//! `gpu_check stage-cost [ITERATIONS]`: a stage's begin + end with events,
//! against two raw `cuEventRecord` calls.
//!
//! `gpu_check launch-cost [LAUNCHES]`: the host's time to launch a tiny
//! kernel, before any session, then with kernels traced in one frame of a
//! session and untraced in the frames after it, then after the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::compile_ptx;
use stageprof::{Config, Format, GpuTrace};

const SPIN: &str = r#"
extern "C" __global__ void spin(long long cycles, float* sink) {
    long long start = clock64();
    float x = threadIdx.x;
    while (clock64() - start < cycles) { x = x * 0.999f + 1.0f; }
    if (x == -1.0f) sink[0] = x;
}
"#;

const COPY_BYTES: usize = 64 << 20;
const COMPUTE_KERNELS: u64 = 10;
const DELEGATED_KERNELS: u64 = 3;
const FRAMES: u64 = 20;

struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    spin: CudaFunction,
    sink: cudarc::driver::CudaSlice<f32>,
    cycles_per_ms: i64,
}

impl Gpu {
    fn new() -> Gpu {
        let ctx = CudaContext::new(0).expect("a CUDA device");
        let ptx = compile_ptx(SPIN).expect("NVRTC compiles the spin kernel");
        let spin = ctx.load_module(ptx).unwrap().load_function("spin").unwrap();
        let stream = ctx.new_stream().unwrap();
        let sink = stream.alloc_zeros::<f32>(1).unwrap();
        let mut gpu = Gpu { ctx, stream, spin, sink, cycles_per_ms: 1_000_000 };
        gpu.calibrate();
        gpu
    }

    fn launch(&self, stream: &Arc<CudaStream>, cycles: i64) {
        let mut l = stream.launch_builder(&self.spin);
        l.arg(&cycles).arg(&self.sink);
        let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (32, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: the arguments match spin(long long, float*); sink holds one float.
        unsafe { l.launch(cfg) }.unwrap();
    }

    /// Clock cycles per millisecond of spinning, measured with events.
    fn calibrate(&mut self) {
        let probe = 10_000_000;
        self.launch(&self.stream.clone(), probe);
        let (a, b) = (self.event(), self.event());
        a.record(&self.stream).unwrap();
        self.launch(&self.stream.clone(), probe);
        b.record(&self.stream).unwrap();
        b.synchronize().unwrap();
        let ms = a.elapsed_ms(&b).unwrap() as f64;
        self.cycles_per_ms = (probe as f64 / ms) as i64;
    }

    fn event(&self) -> CudaEvent {
        self.ctx.new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap()
    }

    fn spin_ms(&self, stream: &Arc<CudaStream>, ms: f64) {
        self.launch(stream, (ms * self.cycles_per_ms as f64) as i64);
    }
}

/// Hand-placed events around the work of one stage call, summed per stage.
#[derive(Default)]
struct HandTimes(std::collections::BTreeMap<&'static str, Vec<(CudaEvent, CudaEvent)>>);

impl HandTimes {
    fn time<R>(&mut self, gpu: &Gpu, stage: &'static str, work: impl FnOnce() -> R) -> R {
        let (a, b) = (gpu.event(), gpu.event());
        a.record(&gpu.stream).unwrap();
        let r = work();
        b.record(&gpu.stream).unwrap();
        self.0.entry(stage).or_default().push((a, b));
        r
    }

    fn total_ns(&self, stage: &str) -> u64 {
        self.0[stage].iter().map(|(a, b)| (a.elapsed_ms(b).unwrap() as f64 * 1e6) as u64).sum()
    }
}

fn config(out: &str, gpu: GpuTrace) -> Config {
    Config {
        output_dir: out.into(),
        formats: vec![Format::Summary, Format::Native, Format::Table, Format::Chrome],
        gpu,
        ..Config::default()
    }
}

fn accuracy(out: &str, kernel_every: u32) -> bool {
    let gpu = Gpu::new();
    let other = gpu.ctx.new_stream().unwrap();
    let host = vec![1.0f32; COPY_BYTES / 4];
    let session = stageprof::init_with(Config { kernel_every, ..config(out, GpuTrace::Kernels) });
    let _on = stageprof::cuda::use_stream(&gpu.stream);
    {
        // The kernel's first launch under CUPTI takes milliseconds (it is instrumented): not in a frame.
        let _s = stageprof::scope!("warm_up");
        gpu.spin_ms(&gpu.stream, 0.01);
        gpu.stream.synchronize().unwrap();
    }
    let mut hand = HandTimes::default();

    let mut device_delta = 0i64;
    let mut frame_events = Vec::new();
    for _ in 0..FRAMES {
        // A frame's GPU window runs from its first work's start: the GPU is
        // idle as it begins, and the event by hand goes right after a short
        // first kernel (0.05 ms), not before the host's allocations ahead of
        // the upload, nor before that kernel's launch, which CUPTI stalls for
        // milliseconds the first time kernel tracing is on again.
        gpu.stream.synchronize().unwrap();
        other.synchronize().unwrap();
        let _f = stageprof::frame();
        gpu.spin_ms(&gpu.stream, 0.05);
        let frame_start = gpu.event();
        frame_start.record(&gpu.stream).unwrap();
        let buffer = {
            let _s = stageprof::scope!("upload");
            hand.time(&gpu, "upload", || {
                let (free0, _) = gpu.ctx.mem_get_info().unwrap();
                let b = stageprof::cuda::clone_htod(&gpu.stream, &host).unwrap();
                let (free1, _) = gpu.ctx.mem_get_info().unwrap();
                device_delta = device_delta.max(free0 as i64 - free1 as i64);
                b
            })
        };
        {
            let _s = stageprof::scope!("compute");
            hand.time(&gpu, "compute", || {
                for _ in 0..COMPUTE_KERNELS {
                    gpu.spin_ms(&gpu.stream, 0.3);
                }
            });
        }
        {
            let _s = stageprof::scope!("download");
            hand.time(&gpu, "download", || {
                let back = gpu.stream.clone_dtoh(&*buffer).unwrap();
                drop(buffer);
                back.len()
            });
        }
        {
            // A helper thread with no stage of its own launches the work:
            // it is the frame thread's `delegate` stage's.
            let _s = stageprof::scope!("delegate");
            std::thread::scope(|t| {
                t.spawn(|| {
                    for _ in 0..DELEGATED_KERNELS {
                        gpu.spin_ms(&gpu.stream, 0.1);
                    }
                });
            });
        }
        {
            // Begins on one stream, ends on another.
            let _s = stageprof::scope!("cross_stream");
            gpu.spin_ms(&gpu.stream, 1.0);
            let _o = stageprof::cuda::use_stream(&other);
            gpu.spin_ms(&other, 1.0);
        }
        // The frame ends when both streams are done.
        gpu.stream.join(&other).unwrap();
        let frame_end = gpu.event();
        frame_end.record(&gpu.stream).unwrap();
        frame_events.push((frame_start, frame_end));
    }
    {
        // Never synchronized before finish.
        let _s = stageprof::scope!("unsynced");
        hand.time(&gpu, "unsynced", || gpu.spin_ms(&gpu.stream, 50.0));
    }
    let report = session.finish();
    let s = report.summary.expect("a summary");
    let stage = |name: &str| s.stages.iter().find(|st| st.name == name).unwrap_or_else(|| panic!("stage {name}"));
    let mut ok = true;
    let mut check = |what: String, pass: bool| {
        println!("{} {what}", if pass { "ok  " } else { "FAIL" });
        ok &= pass;
    };
    for name in ["upload", "compute", "download", "unsynced"] {
        let st = stage(name);
        let hand_ns = hand.total_ns(name);
        let ours = st.gpu_event_ns.unwrap_or(0);
        let err = (ours as f64 - hand_ns as f64) / hand_ns as f64;
        let per_call = hand_ns as f64 / st.calls as f64 / 1e6;
        check(
            format!(
                "{name}: GPU time (events) {:.3} ms vs hand-placed events {:.3} ms ({:+.2}%, {:.2} ms a call)",
                ours as f64 / 1e6,
                hand_ns as f64 / 1e6,
                100.0 * err,
                per_call
            ),
            per_call < 1.0 || err.abs() <= 0.03,
        );
        if let Some(g) = st.gpu {
            println!(
                "     {name}: busy {:.3} ms, span {:.3} ms (CUPTI)",
                g.busy_ns as f64 / 1e6,
                g.span_ns as f64 / 1e6
            );
        }
    }
    let kernels = |name: &str| stage(name).gpu.map_or(0, |g| g.kernels);
    // Frames 0, N, 2N, ... trace kernels; after the last frame, tracing is off unless N is 1.
    let traced = FRAMES.div_ceil(u64::from(kernel_every));
    let traced_calls = |name: &str| stage(name).gpu_traced_calls.unwrap_or(0);
    let frame_stages = ["upload", "compute", "download", "delegate", "cross_stream"];
    check(
        format!(
            "traced calls: {:?} of each frame stage, expected {traced} of {FRAMES}; frames traced {:?}",
            frame_stages.map(traced_calls),
            s.frames.gpu_traced
        ),
        frame_stages.iter().all(|n| traced_calls(n) == traced) && s.frames.gpu_traced == Some(traced),
    );
    check(
        format!("compute: {} kernels, launched {}", kernels("compute"), traced * COMPUTE_KERNELS),
        kernels("compute") == traced * COMPUTE_KERNELS,
    );
    check(
        format!(
            "delegate: {} kernels launched from a stage-less thread, launched {}",
            kernels("delegate"),
            traced * DELEGATED_KERNELS
        ),
        kernels("delegate") == traced * DELEGATED_KERNELS,
    );
    let top = stage("compute").top_kernels.first();
    let shape = top.and_then(|k| k.shape).map(|s| s.to_string());
    check(
        format!(
            "compute: top kernel {:?} x{:?}, {shape:?} (launched with grid 1x1x1, block 32x1x1)",
            top.map(|k| &k.name),
            top.map(|k| k.calls)
        ),
        top.is_some_and(|k| k.name == "spin" && k.calls == traced * COMPUTE_KERNELS)
            && shape.as_deref() == Some("grid 1x1x1, block 32x1x1"),
    );
    check(
        format!("cross_stream: {} kernels on two streams, launched {}", kernels("cross_stream"), traced * 2),
        kernels("cross_stream") == traced * 2,
    );
    let cross = stage("cross_stream").gpu_event_ns.unwrap_or(0);
    check(
        format!("cross_stream: GPU time {:.3} ms resolved (begun on one stream, ended on another)", cross as f64 / 1e6),
        cross > 0,
    );
    let unsynced = u64::from(kernel_every == 1);
    check(
        format!("unsynced: {} kernel resolved at finish, expected {unsynced}", kernels("unsynced")),
        kernels("unsynced") == unsynced,
    );
    let copy = |name: &str, dir: usize| stage(name).gpu.map_or((0, 0), |g| (g.copies, g.copy_bytes[dir]));
    let copied = traced * COPY_BYTES as u64;
    check(
        format!("upload: HtoD copies/bytes {:?}, expected ({traced}, {copied})", copy("upload", 0)),
        copy("upload", 0) == (traced, copied),
    );
    check(
        format!("download: DtoH copies/bytes {:?}, expected ({traced}, {copied})", copy("download", 1)),
        copy("download", 1) == (traced, copied),
    );
    let want = FRAMES * COPY_BYTES as u64;
    let up = stage("upload");
    check(
        format!(
            "upload: GPU memory peak {:?} net {:?}; the buffer is {COPY_BYTES} B, the driver's used memory grew {device_delta} B",
            up.gpu_mem_peak_bytes, up.gpu_mem_net_bytes
        ),
        up.gpu_mem_peak_bytes == Some(COPY_BYTES as u64)
            && up.gpu_mem_net_bytes == Some(want as i64)
            && device_delta >= COPY_BYTES as i64,
    );
    check(
        format!("download: GPU memory net {:?}", stage("download").gpu_mem_net_bytes),
        stage("download").gpu_mem_net_bytes == Some(-(want as i64)),
    );
    // The traced frames' windows, each beside the events placed by hand around the same frame.
    let (hand_frames, windows): (Vec<f64>, Vec<_>) = frame_events
        .iter()
        .zip(&s.frames.each)
        .filter_map(|((a, b), f)| Some((f64::from(a.elapsed_ms(b).unwrap()), f.gpu?)))
        .unzip();
    let worst = hand_frames
        .iter()
        .zip(&windows)
        .map(|(&hand, w)| (w.span_ns as f64 / 1e6 - hand) / hand)
        .fold(0.0f64, |m, e| if e.abs() > m.abs() { e } else { m });
    check(
        format!(
            "frames: {} GPU windows, each within 3% of hand-placed events around the frame (worst {:+.2}%, mean {:.3} ms)",
            windows.len(),
            100.0 * worst,
            hand_frames.iter().sum::<f64>() / hand_frames.len().max(1) as f64
        ),
        windows.len() == traced as usize && worst.abs() <= 0.03,
    );
    check(
        format!(
            "frames: device busy equals the frames' own work's busy (nothing else ran): {:?}",
            windows.iter().map(|w| (w.busy_ns, w.busy_own_ns)).take(3).collect::<Vec<_>>()
        ),
        windows.iter().all(|w| w.busy_ns == w.busy_own_ns && w.busy_ns <= w.span_ns),
    );
    let counters: Vec<&str> = s.counters.iter().map(|c| c.name.as_str()).collect();
    check(format!("NVML and device memory tracks: {counters:?}"), counters.iter().any(|c| c.starts_with("gpu.")));
    ok
}

/// The overhead workload's frame: 4 stages of 8 kernels of 50 µs, synchronized at its end.
fn short_kernels_frame(gpu: &Gpu) {
    let _f = stageprof::frame();
    for stage in ["preprocess", "features", "matching", "refine"] {
        let _s = stageprof::stage(stage);
        for _ in 0..8 {
            gpu.spin_ms(&gpu.stream, 0.05);
        }
    }
    gpu.stream.synchronize().unwrap();
}

fn overhead(mode: &str, frames: u64) {
    let gpu = Gpu::new();
    let trace = match mode {
        "off" => None,
        "events" => Some(GpuTrace::Events),
        "kernels" | "kernels-all" => Some(GpuTrace::Kernels),
        other => panic!("mode {other:?}: off, events, kernels or kernels-all"),
    };
    let out = format!("/tmp/gpu-overhead-{mode}");
    let kernel_every = u32::from(mode == "kernels-all");
    let session = stageprof::init_with(match trace {
        Some(t) => Config { formats: vec![Format::Summary], kernel_every, ..config(&out, t) },
        None => Config { enabled: false, ..Config::default() },
    });
    let _on = stageprof::cuda::use_stream(&gpu.stream);
    for _ in 0..20 {
        short_kernels_frame(&gpu);
    }
    let start = Instant::now();
    for _ in 0..frames {
        short_kernels_frame(&gpu);
    }
    let secs = start.elapsed().as_secs_f64();
    drop(session);
    println!("{mode} {secs:.6}");
}

/// Events mode's cost frame by frame: recording switched on and off every
/// other frame in one session (`stageprof::set_enabled`), each frame timed;
/// the cost is the median over "on" frames of the ratio to the mean of the
/// two "off" frames beside it, so the machine's drift over seconds cancels.
/// (Kernel tracing cannot be measured so: CUPTI traces every launch once on.)
fn paired(frames: u64) {
    let gpu = Gpu::new();
    let session =
        stageprof::init_with(Config { formats: vec![Format::Summary], ..config("/tmp/gpu-paired", GpuTrace::Events) });
    let _on = stageprof::cuda::use_stream(&gpu.stream);
    for _ in 0..20 {
        short_kernels_frame(&gpu);
    }
    let periods: Vec<(bool, f64)> = (0..=frames)
        .map(|i| {
            let on = i % 2 == 1;
            stageprof::set_enabled(on);
            let start = Instant::now();
            short_kernels_frame(&gpu);
            (on, start.elapsed().as_secs_f64())
        })
        .collect();
    stageprof::set_enabled(true);
    drop(session);
    let mut ratios: Vec<f64> = (1..periods.len() - 1)
        .filter(|&i| periods[i].0)
        .map(|i| periods[i].1 / ((periods[i - 1].1 + periods[i + 1].1) / 2.0) - 1.0)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| 100.0 * ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    println!(
        "events, frame by frame: median {:+.2}% against the off frames beside it (quartiles {:+.2}%, {:+.2}%; {} on frames)",
        at(0.5),
        at(0.25),
        at(0.75),
        ratios.len()
    );
}

/// What a stage with events costs the host, against the driver's own
/// `cuEventRecord` (two a stage): ns per iteration, medians of 5 runs.
fn stage_cost(iterations: u32) {
    let gpu = Gpu::new();
    let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    let events = [gpu.ctx.new_event(timing).unwrap(), gpu.ctx.new_event(timing).unwrap()];
    let median_ns = |f: &mut dyn FnMut()| {
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..iterations {
                    f();
                }
                gpu.stream.synchronize().unwrap();
                start.elapsed().as_nanos() as f64 / f64::from(iterations)
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let raw = median_ns(&mut || {
        for e in &events {
            // SAFETY: both handles are live (owned by `events` and `gpu`), of the context bound here.
            unsafe { cudarc::driver::sys::cuEventRecord(e.cu_event(), gpu.stream.cu_stream()) };
        }
    });
    println!("two cuEventRecord calls: {raw:.0} ns");
    // Stages back to back share events (a stage's end is the next one's
    // begin); 1 us apart, each records its own. The wait is timed alone and taken out.
    let apart = || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(1) {}
    };
    let wait_ns = median_ns(&mut || apart());
    for (label, gpu_trace, nvtx) in [
        ("off", GpuTrace::Off, false),
        ("events", GpuTrace::Events, true),
        ("events, no NVTX", GpuTrace::Events, false),
    ] {
        let config = Config { formats: vec![Format::Native], nvtx, ..config("/tmp/gpu-stage-cost", gpu_trace) };
        let session = stageprof::init_with(config);
        let _on = stageprof::cuda::use_stream(&gpu.stream);
        let back_to_back = median_ns(&mut || drop(stageprof::stage("x")));
        let spaced = median_ns(&mut || {
            drop(stageprof::stage("x"));
            apart();
        }) - wait_ns;
        drop(session);
        println!("stage begin + end, {label}: {spaced:.0} ns 1 us apart, {back_to_back:.0} ns back to back");
    }
}

/// Host time a launch: before CUPTI, while it traces, between traced frames, after.
fn launch_cost(launches: u32) {
    let gpu = Gpu::new();
    let time_launches = |label: &str| {
        gpu.stream.synchronize().unwrap();
        let start = Instant::now();
        for _ in 0..launches {
            gpu.spin_ms(&gpu.stream, 0.0);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(launches);
        gpu.stream.synchronize().unwrap();
        println!("launch, {label}: {ns:.0} ns");
    };
    time_launches("no session");
    time_launches("no session");
    let config =
        Config { formats: vec![Format::Summary], kernel_every: 1000, ..config("/tmp/gpu-launch", GpuTrace::Kernels) };
    let session = stageprof::init_with(config);
    let _on = stageprof::cuda::use_stream(&gpu.stream);
    time_launches("kernels traced, before the first frame");
    for frame in 0..4 {
        let _f = stageprof::frame();
        time_launches(if frame == 0 { "kernels traced (frame 0)" } else { "kernels not traced (frames 1-3)" });
    }
    drop(session);
    time_launches("after the session");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("accuracy") => {
            let kernel_every = args.get(3).map_or(1, |n| n.parse().expect("KERNEL_EVERY: a whole number, 1 or more"));
            if !accuracy(args.get(2).map_or("gpu-check-out", String::as_str), kernel_every) {
                std::process::exit(1);
            }
        }
        Some("overhead") => overhead(&args[2], args.get(3).and_then(|f| f.parse().ok()).unwrap_or(500)),
        Some("paired") => paired(args.get(2).and_then(|f| f.parse().ok()).unwrap_or(1000)),
        Some("launch-cost") => launch_cost(args.get(2).and_then(|f| f.parse().ok()).unwrap_or(20_000)),
        Some("stage-cost") => stage_cost(args.get(2).and_then(|f| f.parse().ok()).unwrap_or(100_000)),
        _ => {
            eprintln!(
                "usage: gpu_check accuracy OUT_DIR [KERNEL_EVERY] | gpu_check overhead off|events|kernels|kernels-all FRAMES | gpu_check paired FRAMES | gpu_check stage-cost [ITERATIONS] | gpu_check launch-cost [LAUNCHES]"
            );
            std::process::exit(2);
        }
    }
}
