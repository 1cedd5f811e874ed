//! The reader on PyTorch traces nobody here wrote (HolisticTraceAnalysis's
//! public test data: DDP/NCCL and recommendation-model ranks, MTIA, AMD),
//! on hostile edits of them, and on traces made on H200s for frames whose
//! GPU work comes from other threads and streams (fixtures/frames, by
//! gpu/make_frame_traces.py, with CUDA events around each step). Every
//! expected figure is computed in this file from the raw JSON (times read
//! from the number's text) or measured on the GPU, never from stageprof's
//! output.

use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;
use stageprof_analysis::{Aggregator, Summary};
use stageprof_model::warning::Implausible;
use stageprof_model::{Catalog, CounterSample, GpuActivity, ProfileSink, Span, Warning};

/// A fixture under tests/fixtures/public/, or under tests/fixtures/ when `name` has a folder.
fn fixture(name: &str) -> Vec<u8> {
    let folder = if name.contains('/') { "" } else { "public/" };
    let path = format!("{}/tests/fixtures/{folder}{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut text).unwrap();
    text
}

#[derive(Deserialize)]
struct Trace {
    #[serde(rename = "traceEvents")]
    events: Vec<Event>,
}

#[derive(Deserialize, Clone)]
struct Event {
    #[serde(default)]
    ph: String,
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    pid: serde_json::Value,
    #[serde(default)]
    tid: serde_json::Value,
    ts: Option<Box<RawValue>>,
    dur: Option<Box<RawValue>>,
    #[serde(default)]
    args: serde_json::Value,
}

/// Microseconds as written (`123`, `123.456`) to nanoseconds, by the digits.
fn ns(raw: &RawValue) -> i64 {
    let text = raw.get().trim_matches('"');
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    int.parse::<i64>().unwrap() * 1000 + frac.parse::<i64>().unwrap()
}

impl Event {
    fn start(&self) -> i64 {
        ns(self.ts.as_deref().unwrap())
    }
    fn end(&self) -> i64 {
        self.start() + self.dur.as_deref().map_or(0, ns)
    }
    fn correlation(&self) -> Option<i64> {
        self.args.get("correlation").and_then(|c| c.as_i64())
    }
    fn is_device_work(&self) -> bool {
        self.ph == "X"
            && (matches!(self.cat.as_str(), "kernel" | "gpu_memcpy" | "gpu_memset")
                || self.cat == "mtia_ccp_events" && !self.name.starts_with("event_"))
    }
    fn is_launch(&self) -> bool {
        matches!(self.cat.as_str(), "cuda_runtime" | "cuda_driver" | "mtia_runtime")
    }
}

fn events(text: &[u8]) -> Vec<Event> {
    serde_json::from_slice::<Trace>(text).unwrap().events
}

/// Counts what the reader hands over, beside the aggregation.
#[derive(Default)]
struct Activities(u64);

impl ProfileSink for Activities {
    fn span(&mut self, _: &Span, _: &Catalog) {}
    fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
    fn gpu_activity(&mut self, _: &GpuActivity, _: &Catalog) {
        self.0 += 1;
    }
}

fn report(text: &[u8]) -> (Summary, u64) {
    let mut sinks = (Aggregator::default(), Activities::default());
    let p = stageprof_readers::read_profile(text, &mut sinks).unwrap();
    (sinks.0.summary(&p.catalog, p.run, 5), sinks.1 .0)
}

fn union(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    intervals.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in intervals {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Per frame (`ProfilerStep#`), in start order: its GPU window (start, end)
/// and the device's busy time in it, by the rule docs/summary-schema.md
/// gives: the work launched (any thread) while the frame was open, the
/// window from its first start to its last end, starting no earlier than
/// the previous window's end; busy is the union of all device work in it.
/// (These traces have one device and no stage-less launching threads.)
fn expected_frames(events: &[Event]) -> Vec<(i64, i64, u64)> {
    let mut launches: HashMap<i64, Vec<i64>> = HashMap::new();
    for e in events.iter().filter(|e| e.is_launch() && e.ts.is_some()) {
        if let Some(c) = e.correlation() {
            launches.entry(c).or_default().push(e.start());
        }
    }
    let work: Vec<&Event> = events.iter().filter(|e| e.is_device_work()).collect();
    let launched = |w: &Event| -> Option<i64> {
        let list = launches.get(&w.correlation()?)?;
        list.iter().copied().filter(|&t| t <= w.start()).max().or_else(|| list.iter().copied().min())
    };
    let busy = union(work.iter().map(|w| (w.start(), w.end())).collect());
    let mut frames: Vec<(i64, i64)> =
        events.iter().filter(|e| e.name.starts_with("ProfilerStep#")).map(|e| (e.start(), e.end())).collect();
    frames.sort_unstable();
    let mut previous_end = i64::MIN;
    let mut out = Vec::new();
    for (fs, fe) in frames {
        let mine: Vec<&&Event> = work.iter().filter(|w| launched(w).is_some_and(|t| fs <= t && t < fe)).collect();
        let (Some(first), Some(last)) = (mine.iter().map(|w| w.start()).min(), mine.iter().map(|w| w.end()).max())
        else {
            continue;
        };
        let w0 = first.max(previous_end);
        let w1 = last.max(w0);
        previous_end = w1;
        let in_window: i64 = busy.iter().map(|&(s, e)| (e.min(w1) - s.max(w0)).max(0)).sum();
        out.push((w0, w1, in_window as u64));
    }
    out
}

/// Time the device did nothing between its first and last work.
fn device_idle(events: &[Event]) -> u64 {
    let busy = union(events.iter().filter(|e| e.is_device_work()).map(|e| (e.start(), e.end())).collect());
    let total: i64 = busy.iter().map(|(s, e)| e - s).sum();
    (busy.last().unwrap().1 - busy[0].0 - total) as u64
}

fn first_ts(events: &[Event]) -> i64 {
    events.iter().filter(|e| e.ts.is_some() && e.ph != "M").map(Event::start).min().unwrap()
}

fn check_frames(name: &str, expected_count: usize) {
    let text = fixture(name);
    let events = events(&text);
    let expected = expected_frames(&events);
    assert_eq!(expected.len(), expected_count, "{name}: frames with GPU work");
    let (s, _) = report(&text);
    let base = first_ts(&events);
    let got: Vec<(i64, i64, u64)> = s
        .frames
        .each
        .iter()
        .filter_map(|f| f.gpu)
        .map(|g| (base + g.start_ns as i64, base + (g.start_ns + g.span_ns) as i64, g.busy_ns))
        .collect();
    assert_eq!(got, expected, "{name}: frames' GPU windows and device busy time");
    let idle: u64 = s.frames.each.iter().filter_map(|f| f.gpu).map(|g| g.idle_ns()).sum();
    let window: u64 = expected.iter().map(|&(a, b, _)| (b - a) as u64).sum();
    let busy: u64 = expected.iter().map(|&(_, _, busy)| busy).sum();
    assert_eq!(idle, window - busy, "{name}: idle is the windows less busy");
    assert!(idle <= device_idle(&events), "{name}: frames' idle {idle} beyond the device's {}", device_idle(&events));
    let total = s.frames.gpu.unwrap();
    assert_eq!((total.busy_ns, total.span_ns), (busy, window));
}

#[test]
fn ddp_frames_count_the_communication_threads_kernels() {
    // DDP's all_reduce kernels are launched from autograd's thread, under
    // its own `nccl:all_reduce` ranges: outside the step's stages.
    check_frames("nccl_ddp_rank.json.gz", 3);
    let (s, _) = report(&fixture("nccl_ddp_rank.json.gz"));
    let g = s.frames.gpu.unwrap();
    assert!(g.busy_own_ns < g.busy_ns, "own {} vs device {}", g.busy_own_ns, g.busy_ns);
}

#[test]
fn recommendation_model_frames_are_device_busy_and_never_overlap() {
    check_frames("recsys_rank0.json.gz", 5);
    check_frames("recsys_128_ranks.json.gz", 5);
    check_frames("diff_test.json.gz", 6);
    check_frames("ns_resolution_rank0.json.gz", 5);
}

#[test]
fn mtia_device_work_is_read_like_cuda() {
    let text = fixture("mtia_inference.json.gz");
    let events = events(&text);
    let expected = events.iter().filter(|e| e.is_device_work()).count() as u64;
    let (s, activities) = report(&text);
    assert_eq!(activities, expected);
    let no_id = events.iter().filter(|e| e.is_device_work() && e.correlation().is_none()).count();
    assert!(s.run.warnings.contains(&Warning::NoCorrelationId { count: no_id as u64 }), "{:?}", s.run.warnings);
}

#[test]
fn unknown_accelerator_categories_are_named() {
    let mut text = fixture("amd_mi250_train.json.gz");
    let tail = br#",{"ph":"X","cat":"hpu_op","name":"matmul","pid":3,"tid":1,"ts":4203669604700,"dur":5}]}"#;
    let close = text.iter().rposition(|&b| b == b']').unwrap();
    text.truncate(close);
    text.extend_from_slice(tail);
    let (s, _) = report(&text);
    let hpu = Warning::UnreadDeviceEvents { count: 1, category: "hpu_op".into() };
    assert!(s.run.warnings.contains(&hpu), "{:?}", s.run.warnings);
}

/// The trace's events as JSON text again, with `extra` appended.
fn with_events(events: &[Event], extra: &[String]) -> Vec<u8> {
    let mut out = String::from("{\"traceEvents\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&event_json(e, None));
    }
    for x in extra {
        out.push(',');
        out.push_str(x);
    }
    out.push_str("]}");
    out.into_bytes()
}

/// One event as JSON; `shift_ns` moves its time (whole microseconds).
fn event_json(e: &Event, shift_ns: Option<i64>) -> String {
    let ts = match (&e.ts, shift_ns) {
        (Some(t), Some(shift)) => {
            let t = ns(t) + shift;
            format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
        }
        (Some(t), None) => t.get().to_owned(),
        (None, _) => "null".into(),
    };
    let dur = e.dur.as_ref().map_or("null".to_owned(), |d| d.get().to_owned());
    format!(
        "{{\"ph\":{},\"cat\":{},\"name\":{},\"pid\":{},\"tid\":{},\"ts\":{ts},\"dur\":{dur},\"args\":{}}}",
        serde_json::to_string(&e.ph).unwrap(),
        serde_json::to_string(&e.cat).unwrap(),
        serde_json::to_string(&e.name).unwrap(),
        e.pid,
        e.tid,
        e.args
    )
}

#[test]
fn absurd_numbers_are_left_out_and_named_without_changing_the_rest() {
    let clean = fixture("nccl_ddp_rank.json.gz");
    let events = events(&clean);
    let (before, _) = report(&with_events(&events, &[]));
    let step = events.iter().find(|e| e.name.starts_with("ProfilerStep#")).unwrap();
    let t = step.ts.as_ref().unwrap().get();
    let hostile = [
        r#"{"ph":"X","cat":"kernel","name":"at_zero","pid":1,"tid":7,"ts":0,"dur":5,"args":{"correlation":1}}"#
            .to_owned(),
        format!(r#"{{"ph":"X","cat":"user_annotation","name":"ProfilerStep#99","pid":1,"tid":1,"ts":{t},"dur":-5}}"#),
        format!(
            r#"{{"ph":"X","cat":"user_annotation","name":"ProfilerStep#98","pid":1,"tid":1,"ts":{t},"dur":1e300}}"#
        ),
        r#"{"ph":"X","cat":"kernel","name":"nan","pid":1,"tid":7,"ts":"NaN","dur":1}"#.to_owned(),
    ];
    let (after, _) = report(&with_events(&events, &hostile));
    assert_eq!(after.frames.each, before.frames.each, "every frame's figures unchanged");
    assert_eq!(after.run.duration_ns, before.run.duration_ns);
    assert_eq!(after.stages.len(), before.stages.len());
    let warned = |reason: Implausible, n: u64, first: &str| {
        after.run.warnings.iter().any(
            |w| matches!(w, Warning::Implausible { count, reason: r, name, .. } if *count == n && *r == reason && name == first),
        )
    };
    assert!(warned(Implausible::FarFromTrace, 1, "at_zero"), "{:?}", after.run.warnings);
    assert!(warned(Implausible::NegativeDuration, 1, "ProfilerStep#99"), "{:?}", after.run.warnings);
    assert!(warned(Implausible::NoTime, 2, "ProfilerStep#98"), "{:?}", after.run.warnings);
}

#[test]
fn a_restarted_profiler_reusing_correlation_ids_joins_each_kernel_to_its_own_launch() {
    let events = events(&fixture("nccl_ddp_rank.json.gz"));
    let (once, _) = report(&with_events(&events, &[]));
    // The same run again 10 s later, every correlation id reused.
    let later: Vec<String> =
        events.iter().filter(|e| e.ts.is_some() && e.ph != "M").map(|e| event_json(e, Some(10_000_000_000))).collect();
    let (twice, _) = report(&with_events(&events, &later));
    assert_eq!(twice.frames.each.len(), 2 * once.frames.each.len());
    let n = once.frames.each.len();
    for (a, b) in once.frames.each.iter().zip(&twice.frames.each[n..]) {
        let (a, b) = (a.gpu.unwrap(), b.gpu.unwrap());
        assert_eq!((a.span_ns, a.busy_ns, a.busy_own_ns), (b.span_ns, b.busy_ns, b.busy_own_ns));
    }
    for st in &once.stages {
        let again = twice.stages.iter().find(|t| t.path == st.path).unwrap();
        assert_eq!(again.calls, 2 * st.calls, "{:?}", st.path);
        assert_eq!(again.gpu.map(|g| g.kernels), st.gpu.map(|g| 2 * g.kernels), "{:?}", st.path);
    }
    let ids = events
        .iter()
        .filter(|e| e.is_launch())
        .filter_map(Event::correlation)
        .collect::<std::collections::HashSet<_>>();
    let repeated = Warning::RepeatedCorrelationIds { count: ids.len() as u64 };
    assert!(twice.run.warnings.contains(&repeated), "{:?}", twice.run.warnings);
}

#[test]
fn work_launched_outside_every_stage_gets_a_line_per_thread_and_outermost_operator() {
    let text = fixture("event_sync_multi_stream.json.gz");
    let events = events(&text);
    assert!(events.iter().all(|e| e.cat != "user_annotation"), "no stage or frame in this trace");
    let launches: HashMap<i64, &Event> =
        events.iter().filter(|e| e.is_launch()).filter_map(|e| Some((e.correlation()?, e))).collect();
    let thread_names: HashMap<String, String> = events
        .iter()
        .filter(|e| e.ph == "M" && e.name == "thread_name")
        .map(|e| (e.tid.to_string(), e.args["name"].as_str().unwrap_or_default().to_owned()))
        .collect();
    // Expected lines: the outermost cpu_op open on the launching thread at the launch.
    let mut expected: HashMap<String, u64> = HashMap::new();
    let mut work = Vec::new();
    for w in events.iter().filter(|e| e.is_device_work()) {
        let Some(launch) = w.correlation().and_then(|c| launches.get(&c)) else { continue };
        let at = launch.start();
        let outermost = events
            .iter()
            .filter(|o| o.cat == "cpu_op" && o.tid == launch.tid && o.start() <= at && at <= o.end())
            .max_by_key(|o| (o.end() - o.start(), std::cmp::Reverse(o.start())))
            .map(|o| o.name.clone());
        let who = &thread_names[&launch.tid.to_string()];
        let line = match outermost {
            Some(op) => format!("(no stage) {who}: {op}"),
            None => format!("(no stage) {who}"),
        };
        *expected.entry(line).or_default() += 1;
        work.push((w.start(), w.end()));
    }
    let (s, _) = report(&text);
    let got: HashMap<String, u64> = s
        .stages
        .iter()
        .filter(|st| st.name.starts_with("(no stage) "))
        .map(|st| {
            let g = st.gpu.unwrap();
            (st.name.clone(), g.launched())
        })
        .collect();
    assert_eq!(got, expected);
    let busy: i64 = union(work).iter().map(|(a, b)| b - a).sum();
    let total: u64 =
        s.stages.iter().filter(|st| st.name.starts_with("(no stage) ")).map(|st| st.gpu.unwrap().busy_ns).sum();
    assert_eq!(total, busy as u64, "one line here: its busy time is the union of the work");
    assert!(s.bottlenecks.is_empty(), "its wall time is no stage's CPU time");
}

#[test]
fn diff_of_a_real_trace_pair_catches_a_stage_called_twice_as_often() {
    // The new run calls `## optimizer ##` twice a frame, each call as long as
    // before: the second call runs on another thread at the same time.
    let events = events(&fixture("diff_control.json.gz"));
    let optimizer: Vec<&Event> = events.iter().filter(|e| e.name == "## optimizer ##").collect();
    let frames = events.iter().filter(|e| e.name.starts_with("ProfilerStep#")).count();
    assert_eq!((optimizer.len(), frames), (6, 6));
    let again: Vec<String> = optimizer
        .iter()
        .map(|e| event_json(&Event { tid: serde_json::json!(999_999), ..(*e).clone() }, None))
        .collect();
    let (base, _) = report(&with_events(&events, &[]));
    let (new, _) = report(&with_events(&events, &again));
    let d = stageprof_analysis::diff::diff(&[base], &[new], Default::default()).unwrap();
    let stage = d.stages.iter().find(|s| s.path == ["## optimizer ##"]).unwrap();
    let measure = |m| stage.changes.iter().find(|c| c.measure == m).unwrap();
    use stageprof_analysis::diff::{Measure, Verdict};
    let wall = measure(Measure::Wall);
    assert_eq!((wall.base_calls, wall.new_calls), (6, 12));
    assert_eq!(wall.base_mean_ns, wall.new_mean_ns, "each call exactly as long");
    let per_frame = measure(Measure::PerFrame);
    assert_eq!(per_frame.calls_per_frame, Some((1.0, 2.0)));
    assert!((per_frame.change_pct - 100.0).abs() < 1e-9, "{}", per_frame.change_pct);
    assert_eq!(per_frame.verdict, Verdict::Slower);
    assert!(d.regressions(50.0).iter().any(|(s, c)| s.path == ["## optimizer ##"] && c.measure == Measure::PerFrame));
}

#[test]
fn diff_compares_the_device_busy_time_of_frames() {
    let (control, test) = (fixture("diff_control.json.gz"), fixture("diff_test.json.gz"));
    let mean_busy = |text: &[u8]| {
        let frames = expected_frames(&events(text));
        frames.iter().map(|f| f.2).sum::<u64>() as f64 / frames.len() as f64
    };
    let d = stageprof_analysis::diff::diff(&[report(&control).0], &[report(&test).0], Default::default()).unwrap();
    let g = d.frames_gpu.unwrap();
    assert_eq!((g.base_calls, g.new_calls), (6, 6));
    assert_eq!(g.base_mean_ns, mean_busy(&control).round() as u64);
    assert_eq!(g.new_mean_ns, mean_busy(&test).round() as u64);
}

fn frames_truth() -> serde_json::Value {
    let path = format!("{}/tests/fixtures/frames/ground_truth_frames.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Each frame's GPU window against the CUDA events placed around its step
/// in the same run: the events open a little before the first kernel.
fn windows_match_cuda_events(run: &str, tolerance: f64) {
    let truth = frames_truth();
    let (s, _) = report(&fixture(&format!("frames/{run}.pt.trace.json.gz")));
    let windows: Vec<f64> = s.frames.each.iter().filter_map(|f| f.gpu).map(|g| g.span_ns as f64 / 1e6).collect();
    let events: Vec<f64> = truth[run]["step_gpu_ms"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(windows.len(), events.len(), "{run}: one window per profiled step");
    for (w, e) in windows.iter().zip(&events) {
        assert!((w - e).abs() / e < tolerance, "{run}: window {w:.3} ms vs CUDA events {e:.3} ms");
    }
}

#[test]
fn ddp_on_two_h200s_frames_match_cuda_events_and_count_nccl_work() {
    for rank in ["ddp_rank0", "ddp_rank1"] {
        windows_match_cuda_events(rank, 0.01);
        check_frames(&format!("frames/{rank}.pt.trace.json.gz"), 5);
        let text = fixture(&format!("frames/{rank}.pt.trace.json.gz"));
        let all = events(&text);
        let launched: std::collections::HashSet<i64> =
            all.iter().filter(|e| e.is_launch()).filter_map(Event::correlation).collect();
        // The warm-up step's kernels were launched before the trace began.
        let nccl = all
            .iter()
            .filter(|e| e.cat == "kernel" && e.name.starts_with("ncclDevKernel"))
            .filter(|e| e.correlation().is_some_and(|c| launched.contains(&c)))
            .count();
        let (s, _) = report(&text);
        let all_reduce = s.stages.iter().find(|st| st.path == ["nccl:all_reduce"]).unwrap();
        assert_eq!(all_reduce.gpu.unwrap().kernels, nccl as u64, "{rank}: every NCCL kernel in its stage");
        let g = s.frames.gpu.unwrap();
        assert!(g.busy_ns > g.busy_own_ns, "{rank}: the device ran NCCL's kernels besides the step's own");
    }
}

#[test]
fn side_streams_and_cuda_graphs_on_an_h200() {
    windows_match_cuda_events("streams_graphs", 0.01);
    check_frames("frames/streams_graphs.pt.trace.json.gz", 5);
    let truth = frames_truth();
    let (s, _) = report(&fixture("frames/streams_graphs.pt.trace.json.gz"));
    for stage in ["side", "graph"] {
        let per_step = truth["streams_graphs"]["kernels_per_step"][stage].as_u64().unwrap();
        let st = s.stages.iter().find(|st| st.path == [stage]).unwrap();
        assert_eq!(st.gpu.unwrap().kernels, 5 * per_step, "{stage}: kernels launched, by construction");
    }
}
