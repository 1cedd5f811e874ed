//! The JSON summary (docs/summary-schema.md).

use stageprof_analysis::DurationStats;
use stageprof_analysis::{Bottleneck, FigureValue, StageStats, Summary, SCHEMA_VERSION, STAGE_FIGURES};
use stageprof_model::{CopyKind, FrameGpu};

use crate::json::JsonWriter;

fn call_stats(w: &mut JsonWriter, s: &DurationStats) {
    w.field("mean_ns", s.mean_ns)
        .field("min_ns", s.min_ns)
        .field("max_ns", s.max_ns)
        .field("stddev_ns", s.stddev_ns)
        .field("p50_ns", s.p50_ns)
        .field("p95_ns", s.p95_ns)
        .field("p99_ns", s.p99_ns);
}

/// The stages the queues join and the limiting one (null without queues).
fn pipeline(w: &mut JsonWriter, s: &Summary) {
    let Some(p) = &s.pipeline else {
        w.key("pipeline").raw("null");
        return;
    };
    w.key("pipeline").begin_object().key("stages").begin_array();
    for st in &p.stages {
        w.begin_object()
            .field_str("thread", &st.thread)
            .field("workers", st.workers)
            .field_strs("inputs", st.inputs.iter().map(String::as_str))
            .field_strs("outputs", st.outputs.iter().map(String::as_str))
            .field_f64("busy_pct", st.busy_pct)
            .field("items", st.items)
            .field_opt("service_ns", st.service_ns)
            .field_opt("item_age_p50_ns", st.item_age.map(|a| a.p50_ns))
            .field_opt("item_age_p95_ns", st.item_age.map(|a| a.p95_ns))
            .field_opt("item_age_max_ns", st.item_age.map(|a| a.max_ns))
            .end_object();
    }
    w.end_array();
    let rate = |v: Option<f64>| v.map(|r| format!("{r:.3}"));
    w.field_opt("measured_per_s", rate(p.measured_per_s)).field_opt("predicted_per_s", rate(p.predicted_per_s));
    match &p.latency {
        Some(l) => {
            w.key("latency").begin_object().field("items", l.count);
            call_stats(w, l);
            w.end_object();
        }
        None => {
            w.key("latency").raw("null");
        }
    }
    w.key("speedups").begin_array();
    for sp in &p.speedups {
        w.begin_object()
            .field_str("thread", &p.stages[sp.stage].thread)
            .field("faster_pct", sp.faster_pct)
            .field_f64("throughput_per_s", sp.throughput_per_s)
            .field_opt("latency_ns", sp.latency_ns.map(|l| l.round() as u64))
            .end_object();
    }
    w.end_array();
    w.key("undersized_queues").begin_array();
    for q in &p.undersized_queues {
        w.begin_object()
            .field_str("name", &q.name)
            .field("capacity", q.capacity)
            .field_f64("sender_blocked_pct", q.sender_blocked_pct)
            .field_f64("receiver_waited_pct", q.receiver_waited_pct)
            .end_object();
    }
    w.end_array();
    match s.limiting_stage() {
        Some(l) => {
            w.key("limiting_stage")
                .begin_object()
                .field_str("thread", &l.stage.thread)
                .field_f64("busy_pct", l.stage.busy_pct)
                .field_opt("inputs_full_pct", l.inputs_full_pct.map(|p| format!("{p:.3}")))
                .field_opt("outputs_empty_pct", l.outputs_empty_pct.map(|p| format!("{p:.3}")))
                .end_object();
        }
        None => {
            w.key("limiting_stage").raw("null");
        }
    }
    w.end_object();
}

/// A stage's kernels and copies, the figures that are lists rather than numbers.
fn gpu_work_fields(w: &mut JsonWriter, st: &StageStats) {
    w.key("top_kernels").begin_array();
    for k in &st.top_kernels {
        let dims = |d: [u32; 3]| format!("[{},{},{}]", d[0], d[1], d[2]);
        w.begin_object()
            .field_str("name", &k.name)
            .field_opt("grid", k.shape.map(|s| dims(s.grid)))
            .field_opt("block", k.shape.map(|s| dims(s.block)))
            .field("calls", k.calls)
            .field("total_ns", k.total_ns)
            .end_object();
    }
    w.end_array();
    w.key("copies");
    let Some(g) = st.gpu.filter(|g| g.copies > 0) else {
        w.raw("null");
        return;
    };
    w.begin_object();
    for (i, kind) in CopyKind::ALL.iter().enumerate() {
        if g.copy_bytes[i] == 0 && g.copy_ns[i] == 0 {
            continue;
        }
        // Bytes per nanosecond are GB/s.
        let gbps = g.copy_bytes[i] as f64 / g.copy_ns[i].max(1) as f64;
        w.key(kind.label())
            .begin_object()
            .field("bytes", g.copy_bytes[i])
            .field("busy_ns", g.copy_ns[i])
            .field_f64("gb_per_s", gbps)
            .end_object();
    }
    w.end_object();
}

/// A figure's value as JSON: `null` where it was not measured.
fn figure_field(w: &mut JsonWriter, key: &str, value: Option<FigureValue>) {
    w.key(key);
    match value {
        None => w.raw("null"),
        Some(FigureValue::Unsigned(v)) => w.raw(v),
        Some(FigureValue::Signed(v)) => w.raw(v),
        Some(FigureValue::Real(v)) => w.f64(v),
        Some(FigureValue::Flag(v)) => w.raw(v),
    };
}

/// A frame's (or all frames') GPU figures (docs/summary-schema.md, frames).
fn frame_gpu_fields(w: &mut JsonWriter, g: &FrameGpu) {
    w.field("gpu_busy_ns", g.busy_ns)
        .field("gpu_busy_own_ns", g.busy_own_ns)
        .field_f64("gpu_busy_pct", g.busy_pct())
        .key("gpu_idle_ns")
        .begin_object()
        .field("total", g.idle_ns())
        .field("waiting_for_host_launch", g.idle_host_ns)
        .field("synchronization", g.idle_sync_ns)
        .field("other", g.idle_other_ns)
        .end_object();
}

/// The fields that say which stage this is.
fn stage_identity(w: &mut JsonWriter, st: &StageStats) {
    w.field_str("name", &st.name).field_strs("path", st.path.iter().map(String::as_str));
}

/// The summary as a JSON document.
pub fn summary_json(s: &Summary) -> String {
    let run = &s.run;
    let mut w = JsonWriter::new();
    w.begin_object()
        .field("schema_version", SCHEMA_VERSION)
        .field_str("generator", concat!("stageprof ", env!("CARGO_PKG_VERSION")))
        .field_str("source", &run.source)
        .field("start_unix_ns", run.start_unix_ns)
        .field("total_ns", run.duration_ns)
        .field_str("end_reason", &run.end_reason)
        .field("pid", run.pid)
        .field("threads", s.threads)
        .field("cpu_time", run.cpu_time)
        .field("memory_tracked", run.memory_tracked)
        .field_opt("peak_rss_bytes", run.peak_rss_bytes)
        .field("dropped_events", run.dropped_records);
    w.key("host")
        .begin_object()
        .field_str("hostname", &run.host.hostname)
        .field_str("os", &run.host.os)
        .field_str("arch", &run.host.arch)
        .field_str("cpu_model", &run.host.cpu_model)
        .field("logical_cpus", run.host.logical_cpus)
        .field("memory_bytes", run.host.memory_bytes)
        .end_object();
    w.field_strs("devices", run.devices.iter().map(String::as_str));
    w.key("raw_events_kept");
    match &run.bounded {
        Some(b) => {
            w.begin_object().field("limit_bytes", b.limit_bytes).field("parts_written", b.parts_written);
            w.key("parts").begin_array();
            for p in &b.kept {
                w.begin_object()
                    .field_str("path", &p.path)
                    .field("start_ns", p.start_ns)
                    .field("end_ns", p.end_ns)
                    .field("bytes", p.bytes)
                    .end_object();
            }
            w.end_array().end_object();
        }
        None => {
            w.raw("null");
        }
    }
    w.key("peak_stage_host_mem");
    match s.peak_stage_host_mem() {
        Some((i, bytes)) => {
            w.begin_object().field_strs("path", s.stages[i].path.iter().map(String::as_str)).field("bytes", bytes);
            w.end_object();
        }
        None => {
            w.raw("null");
        }
    }
    let warnings: Vec<String> = run.warnings.iter().map(ToString::to_string).collect();
    w.field_strs("warnings", warnings.iter().map(String::as_str));
    w.key("stages").begin_array();
    for st in &s.stages {
        w.begin_object();
        stage_identity(&mut w, st);
        for f in STAGE_FIGURES {
            figure_field(&mut w, f.key, f.value(st));
        }
        w.key("wall_by_thread").begin_array();
        for t in &st.wall_by_thread {
            w.begin_object().field_str("thread", &t.thread).field("wall_ns", t.wall_ns).end_object();
        }
        w.end_array();
        gpu_work_fields(&mut w, st);
        w.end_object();
    }
    w.end_array();
    let f = &s.frames;
    w.key("frames")
        .begin_object()
        .field("count", f.count)
        .field("sampled", f.sampled)
        .field_opt("gpu_traced", f.gpu_traced)
        .field("total_ns", f.duration.total_ns);
    call_stats(&mut w, &f.duration);
    w.key("gpu_span_ns");
    match (&f.gpu_span, &f.gpu) {
        (Some(span), Some(total)) => {
            w.begin_object().field("total_ns", span.total_ns);
            call_stats(&mut w, span);
            w.end_object();
            frame_gpu_fields(&mut w, total);
        }
        _ => {
            w.raw("null");
        }
    }
    w.field("listed", f.each.len()).key("each").begin_array();
    for (i, fr) in f.each.iter().enumerate() {
        w.begin_object().field("index", i).field("start_ns", fr.start_ns).field("duration_ns", fr.duration_ns);
        w.field("sampled", fr.sampled);
        if let Some(g) = fr.gpu {
            w.field("gpu_start_ns", g.start_ns).field("gpu_span_ns", g.span_ns);
            frame_gpu_fields(&mut w, &g);
        }
        w.end_object();
    }
    w.end_array();
    w.end_object();
    w.key("counters").begin_array();
    for c in &s.counters {
        w.begin_object()
            .field_str("name", &c.name)
            .field("samples", c.samples)
            .field_f64("min", c.min)
            .field_f64("max", c.max)
            .field_f64("mean", c.mean)
            .field_f64("last", c.last)
            .end_object();
    }
    w.end_array();
    w.key("queues").begin_array();
    for q in &s.queues {
        w.begin_object()
            .field_str("name", &q.name)
            .field_opt("capacity", q.capacity)
            .field("sent", q.sent)
            .field("received", q.received)
            .field_f64("depth_mean", q.depth_mean)
            .field("depth_max", q.depth_max)
            .field_opt("full_pct", q.full_pct.map(|p| format!("{p:.3}")))
            .field_f64("empty_pct", q.empty_pct)
            .field("residence_p50_ns", q.residence.p50_ns)
            .field("residence_p95_ns", q.residence.p95_ns)
            .field("residence_max_ns", q.residence.max_ns)
            .field("sender_blocked_ns", q.sender_blocked_ns)
            .field("receiver_waited_ns", q.receiver_waited_ns)
            .end_object();
    }
    w.end_array();
    pipeline(&mut w, s);
    w.key("memory_peaks").begin_array();
    for m in &s.memory {
        let p = &m.peak;
        w.begin_object().field_str("pool", m.pool.label()).field("bytes", p.bytes).field("start_ns", p.start_ns);
        w.field("end_ns", p.end_ns);
        match p.stage {
            Some(i) => w.field_strs("stage_path", s.stages[i].path.iter().map(String::as_str)),
            None => w.key("stage_path").raw("null"),
        };
        w.end_object();
    }
    w.end_array();
    bottleneck_list(&mut w, "bottlenecks", &s.bottlenecks, s);
    bottleneck_list(&mut w, "gpu_bottlenecks", &s.gpu_bottlenecks, s);
    w.end_object();
    w.finish()
}

fn bottleneck_list(w: &mut JsonWriter, key: &str, ranked: &[Bottleneck], s: &Summary) {
    w.key(key).begin_array();
    for b in ranked {
        let st = &s.stages[b.stage];
        w.begin_object().field("rank", b.rank);
        stage_identity(w, st);
        w.field("self_ns", b.self_ns)
            .field_f64("share_pct", b.share_pct)
            .field("calls", st.calls)
            .field("wall_ns", st.wall_ns)
            .field_opt("host_mem_peak_bytes", b.host_mem_peak_bytes)
            .field_opt("host_mem_net_bytes", st.host_mem_net_bytes)
            .field_opt("gpu_mem_peak_bytes", st.gpu_mem_peak_bytes)
            .end_object();
    }
    w.end_array();
}
