//! The HTML report: one self-contained page (inline CSS, SVG and a little
//! hand-written script) that opens offline. Names from traces only ever
//! reach the page through [`escape`]; the script reads numbers from
//! `data-` attributes and never parses names, so no name can become code.

use std::fmt::Write;

use stageprof_analysis::{figures, Bottleneck, Pipeline, PipelineStage, StageFigure, StageStats, Summary};
use stageprof_model::{CopyKind, FrameGpu, MemoryPool};

use crate::svg::{escape, line_chart, stacked_bars, Bar, Point, Segment};
use crate::units::{
    bytes, display_path, duration, figure_text, kernel_name, raw_events_kept, shorten, signed_bytes, NAME_CHARS,
};

/// Stages shown in the bar charts, longest first.
const CHART_STAGES: usize = 20;
/// Frames drawn as bars at most; frames are bucketed beyond.
const FRAME_BARS: usize = 400;
/// Top-level stages a frame's bar is split by; the others are drawn as one.
const FRAME_STAGES: usize = 8;
/// Colours the frame bars cycle through (classes `c0`..).
const FRAME_COLOURS: usize = 8;
/// Kernels listed in the kernel table.
const KERNELS_LISTED: usize = 25;

pub(crate) const STYLE: &str = include_str!("../html/report.css");
const SCRIPT: &str = include_str!("../html/report.js");

/// The report of one profile as one page.
pub fn render_html(s: &Summary) -> String {
    page(s, |_| {})
}

/// The page of one profile, with `more` sections (another subject's) after its own.
pub(crate) fn page(s: &Summary, more: impl FnOnce(&mut String)) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let title = format!("stageprof report: {}", s.run.source);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(page, "<h1>{}</h1>", escape(&title));
    overview(&mut page, s);
    bottleneck_cards(&mut page, s);
    flame(&mut page, s);
    stage_table(&mut page, s);
    time_charts(&mut page, s);
    memory_charts(&mut page, s);
    timeline(&mut page, s);
    frame_chart(&mut page, s);
    queues(&mut page, s);
    kernels_and_copies(&mut page, s);
    more(&mut page);
    let _ = writeln!(page, "<script>{SCRIPT}</script></body></html>");
    page
}

pub(crate) fn section(page: &mut String, id: &str, heading: &str, explain: &str) {
    let _ = write!(page, r#"<section id="{id}"><h2>{heading}</h2><p class="explain">{explain}</p>"#);
}

fn overview(page: &mut String, s: &Summary) {
    section(page, "overview", "Overview", "The run as a whole.");
    let run = &s.run;
    let mut facts: Vec<(&str, String)> = vec![("total time", duration(run.duration_ns))];
    facts.push(("frames", s.frames.count.to_string()));
    if let Some(busy) = s.gpu_busy_pct() {
        facts.push(("GPU busy", format!("{busy:.1}%")));
    }
    if let Some((i, b)) = s.peak_stage_host_mem() {
        facts.push(("peak host memory (stage)", format!("{} in {}", bytes(b), shorten(&s.stages[i].name, NAME_CHARS))));
    }
    if let Some(rss) = run.peak_rss_bytes {
        facts.push(("peak RSS", bytes(rss)));
    }
    if let Some((i, b)) = s.peak_stage_gpu_mem() {
        facts.push(("peak GPU memory (stage)", format!("{} in {}", bytes(b), shorten(&s.stages[i].name, NAME_CHARS))));
    }
    if !run.devices.is_empty() {
        facts.push(("device", run.devices.join(", ")));
    }
    let h = &run.host;
    if !h.hostname.is_empty() {
        facts.push((
            "host",
            format!("{} ({}, {} CPUs, {})", h.hostname, h.cpu_model, h.logical_cpus, bytes(h.memory_bytes)),
        ));
    }
    facts.push(("threads", s.threads.to_string()));
    facts.push(("ended by", run.end_reason.clone()));
    if run.dropped_records > 0 {
        facts.push(("dropped records", run.dropped_records.to_string()));
    }
    if let Some(b) = &run.bounded {
        facts.push(("raw events kept", format!("{} (the figures cover the whole run)", raw_events_kept(b))));
    }
    page.push_str("<dl class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(page, "<div><dt>{k}</dt><dd>{}</dd></div>", escape(&v));
    }
    page.push_str("</dl>");
    for w in &run.warnings {
        let fix = w.fix().map_or(String::new(), |f| format!(" To fix: {f}."));
        let _ = write!(page, "<p class=\"warning\">warning: {}.{}</p>", escape(&w.to_string()), escape(&fix));
    }
    page.push_str("</section>");
}

fn bottleneck_cards(page: &mut String, s: &Summary) {
    section(page, "bottlenecks", "Top bottlenecks", "The stages that cost the most of their own time (nested stages excluded), and the one that held the most memory.");
    page.push_str("<div class=\"cards\">");
    let card = |page: &mut String, b: &Bottleneck, kind: &str| {
        let st = &s.stages[b.stage];
        let _ = write!(
            page,
            "<div class=\"card\"><div class=\"rank\">{kind} #{}</div><div class=\"name\">{}</div><div class=\"big\">{}</div><p>{:.1}% of all stages' {kind} time; {} calls, p50 {}, p99 {}.</p></div>",
            b.rank,
            escape(&display_path(&st.path, " / ")),
            duration(b.self_ns),
            b.share_pct,
            st.calls,
            duration(st.call.p50_ns),
            duration(st.call.p99_ns),
        );
    };
    for b in s.bottlenecks.iter().take(3) {
        card(page, b, "CPU");
    }
    for b in s.gpu_bottlenecks.iter().take(3) {
        card(page, b, "GPU");
    }
    let memory_card = |page: &mut String, kind: &str, (i, peak): (usize, u64), net: Option<i64>| {
        let st = &s.stages[i];
        let _ = write!(
            page,
            "<div class=\"card mem\"><div class=\"rank\">{kind} memory</div><div class=\"name\">{}</div><div class=\"big\">{}</div><p>The most {kind} memory any stage held above a call's start; {} retained over {} calls.</p></div>",
            escape(&display_path(&st.path, " / ")),
            bytes(peak),
            signed_bytes(net.unwrap_or(0)),
            st.calls,
        );
    };
    if let Some((i, b)) = s.peak_stage_host_mem() {
        let st = &s.stages[i];
        memory_card(page, "host", (i, b), st.mem_net_bytes());
    }
    if let Some((i, b)) = s.peak_stage_gpu_mem() {
        memory_card(page, "GPU", (i, b), s.stages[i].gpu_mem_net_bytes);
    }
    page.push_str("</div></section>");
}

fn flame(page: &mut String, s: &Summary) {
    if s.stages.is_empty() {
        return;
    }
    section(
        page,
        "flame",
        "Flame graph",
        "Each box is a stage, as wide as its wall time summed over calls, its nested stages below it; where stages ran on several threads, the top row names the threads and each thread's stages are drawn under it; the green band is the GPU busy time of the work it launched, as a share of its wall time. Click a box to zoom into it, click the top row or \"show all\" to zoom out; hover for the figures.",
    );
    super::flame::flame_graph(page, s);
    page.push_str("</section>");
}

/// A sortable cell with its attributes (`class`, or none): shown text and
/// the number it sorts by; one with no number sorts below every other.
fn cell(page: &mut String, attributes: &str, text: &str, sort: Option<f64>) {
    match sort {
        Some(v) => {
            let _ = write!(page, "<td{attributes} data-v=\"{v}\">{}</td>", escape(text));
        }
        // The script reads "-Infinity" as a number.
        None => {
            let _ = write!(page, "<td{attributes} data-v=\"-Infinity\">{}</td>", escape(text));
        }
    }
}

/// The HTML stage table's main columns, each shown where some stage has it
/// (event-timed GPU time only where no GPU work was traced): with the
/// distribution they fit a 1,280-pixel window.
const MAIN_COLUMNS: &[&StageFigure] = &[
    &figures::CALLS,
    &figures::WALL,
    &figures::SELF,
    &figures::P50,
    &figures::P99,
    &figures::GPU_BUSY,
    &figures::GPU_EVENTS,
    &figures::MEM_PEAK,
    &figures::GPU_MEM_PEAK,
];

/// Columns shown on asking ("more columns"), where measured.
const MORE_COLUMNS: &[&StageFigure] = &[
    &figures::MAX,
    &figures::CPU,
    &figures::MEM_NET,
    &figures::GPU_EVENTS,
    &figures::GPU_SPAN,
    &figures::GPU_KERNELS,
    &figures::GPU_MEM_NET,
];

/// The stage table's columns, each with whether it is one of the main ones.
fn table_columns(s: &Summary) -> Vec<(&'static StageFigure, bool)> {
    let traced = figures::GPU_BUSY.measured_in(&s.stages) || figures::GPU_KERNELS.measured_in(&s.stages);
    let main = |f: &StageFigure| !(traced && f.key == figures::GPU_EVENTS.key);
    let mut columns: Vec<(&StageFigure, bool)> = MAIN_COLUMNS.iter().filter(|f| main(f)).map(|&f| (f, true)).collect();
    for &f in MORE_COLUMNS {
        if !columns.iter().any(|(c, _)| c.key == f.key) {
            columns.push((f, false));
        }
    }
    columns.retain(|(f, _)| f.measured_in(&s.stages));
    columns
}

fn stage_table(page: &mut String, s: &Summary) {
    section(page, "stages", "Stages", "Nested as recorded. Click a column to sort: children stay under their parent. Wall and self time are summed over calls; p50/p99 are per call. The last column is each stage's distribution of call times (click it to enlarge).");
    let columns = table_columns(s);
    if columns.iter().any(|(_, main)| !main) {
        page.push_str("<p><button id=\"more-columns\">more columns</button></p>");
    }
    page.push_str("<table id=\"stage-table\" class=\"sortable\"><thead><tr><th data-type=\"text\">stage</th>");
    let class = |main: bool| if main { "" } else { " class=\"more\"" };
    for (f, main) in &columns {
        let _ = write!(page, "<th{} title=\"{}\">{}</th>", class(*main), escape(f.doc), f.label);
    }
    page.push_str("<th title=\"per call, from the shortest to the longest\">calls by time</th></tr></thead><tbody>");
    for st in &s.stages {
        let _ = write!(
            page,
            "<tr data-depth=\"{}\"><td class=\"name\" style=\"padding-left:{}em\">{}</td>",
            st.depth,
            0.4 + 1.2 * st.depth as f64,
            escape(&shorten(&st.name, NAME_CHARS))
        );
        for (f, main) in &columns {
            let value = f.value(st);
            cell(page, class(*main), &figure_text(f.unit, value), value.map(|v| v.as_f64()));
        }
        let spread = st.call.p99_ns as f64 / st.call.p50_ns.max(1) as f64;
        let _ = write!(
            page,
            "<td class=\"dist\" data-v=\"{spread}\">{}</td></tr>",
            crate::svg::distribution(&st.per_call.wall.values, &st.call)
        );
    }
    page.push_str("</tbody></table></section>");
}

/// The stages the charts show: the longest by wall time, derived views left out.
fn chart_stages(s: &Summary) -> Vec<&StageStats> {
    let mut stages: Vec<&StageStats> = s.stages.iter().filter(|st| !st.derived).collect();
    stages.sort_by_key(|st| std::cmp::Reverse(st.wall_ns));
    stages.truncate(CHART_STAGES);
    stages
}

fn time_charts(page: &mut String, s: &Summary) {
    let stages = chart_stages(s);
    if stages.is_empty() {
        return;
    }
    section(
        page,
        "time-share",
        "Time share per stage",
        "Each stage's own time (nested stages excluded) as a share of all stages' own time.",
    );
    let mut by_self: Vec<&StageStats> = stages.clone();
    by_self.sort_by_key(|st| std::cmp::Reverse(st.self_ns));
    let bars: Vec<Bar> = by_self
        .iter()
        .map(|st| Bar {
            label: display_path(&st.path, " / "),
            segments: vec![Segment {
                value: st.self_pct.unwrap_or(0.0),
                class: "self",
                tip: format!("{}: {} own time", st.name, duration(st.self_ns)),
            }],
        })
        .collect();
    page.push_str(&stacked_bars(&bars, 900.0, |v| format!("{v:.1}%")));
    page.push_str("</section>");

    let gpu = stages.iter().any(|st| st.gpu.is_some());
    let cpu_label = if s.run.cpu_time { "CPU time" } else { "wall time (CPU time not measured)" };
    let explain = if gpu {
        format!("Per stage, summed over calls: {cpu_label} on the host and GPU busy time of the work it launched.")
    } else {
        format!("Per stage, summed over calls: {cpu_label}. The profile has no GPU activity.")
    };
    section(page, "cpu-gpu", "CPU against GPU time per stage", &escape(&explain));
    let bars: Vec<Bar> = stages
        .iter()
        .map(|st| {
            let host = st.cpu_ns.unwrap_or(st.wall_ns);
            let mut segments = vec![Segment {
                value: host as f64,
                class: "cpu",
                tip: format!("{}: {} {cpu_label}", st.name, duration(host)),
            }];
            if let Some(g) = st.gpu {
                segments.push(Segment {
                    value: g.busy_ns as f64,
                    class: "gpu",
                    tip: format!("{}: {} GPU busy", st.name, duration(g.busy_ns)),
                });
            }
            Bar { label: display_path(&st.path, " / "), segments }
        })
        .collect();
    page.push_str(&stacked_bars(&bars, 900.0, |v| duration(v as u64)));
    page.push_str(
        "<p class=\"legend\"><span class=\"key cpu\"></span>host <span class=\"key gpu\"></span>GPU busy</p></section>",
    );
}

fn memory_charts(page: &mut String, s: &Summary) {
    if s.memory.is_empty() {
        return;
    }
    section(
        page,
        "memory",
        "Memory over time",
        "Each allocator's bytes in use; the circle marks the peak, held by the innermost stage call it fell in.",
    );
    for m in &s.memory {
        let what = match m.pool {
            MemoryPool::Host => "Host memory",
            MemoryPool::Gpu => "GPU memory",
        };
        let p = &m.peak;
        let holder = p.stage.map_or("no stage".into(), |i| display_path(&s.stages[i].path, " / "));
        let when = if p.start_ns == p.end_ns {
            format!("at {}", duration(p.start_ns))
        } else {
            format!("between {} and {}", duration(p.start_ns), duration(p.end_ns))
        };
        let peak_text = format!("peak {} {when}, in {holder}", signed_level(p.bytes));
        let _ = write!(page, "<h3>{what}</h3><p class=\"peak\">{}</p>", escape(&peak_text));
        let mut points: Vec<Point> =
            m.points.iter().map(|&(t, b)| Point { x: t as f64, y: b as f64, flag: None }).collect();
        // A peak known only within a call is drawn at the call's middle.
        let at = p.start_ns + (p.end_ns - p.start_ns) / 2;
        let i = points.partition_point(|q| q.x < at as f64);
        points.insert(i, Point { x: at as f64, y: p.bytes as f64, flag: Some(peak_text) });
        page.push_str(&line_chart(&points, 900.0, 200.0, |x| duration(x as u64), |y| signed_level(y as i64)));
    }
    page.push_str("</section>");
}

/// An allocator level: bytes, negative where a trace began mid-run with frees.
fn signed_level(b: i64) -> String {
    if b < 0 {
        format!("-{}", bytes(b.unsigned_abs()))
    } else {
        bytes(b as u64)
    }
}

/// Height of one row of the timeline, in pixels.
const TIMELINE_ROW: u32 = 14;

fn timeline(page: &mut String, s: &Summary) {
    let t = &s.timeline;
    let Some(t0) = t.tracks.iter().flat_map(|tr| tr.boxes.first()).map(|b| b.start_ns).min() else { return };
    let t1 = t.tracks.iter().flat_map(|tr| &tr.boxes).map(|b| b.end_ns).max().unwrap_or(t0);
    section(
        page,
        "timeline",
        "Timeline",
        &format!(
            "Each thread's stages and each GPU stream's kernels and copies (the longest {} of each track). Scroll to zoom, drag to pan; hover for names.",
            stageprof_analysis::MAX_BOXES_PER_TRACK
        ),
    );
    page.push_str("<div class=\"tl-controls\" data-svg=\"timeline-svg\"><button data-zoom=\"in\">zoom in</button><button data-zoom=\"out\">zoom out</button><button data-zoom=\"reset\">reset</button> <span id=\"tl-range\" class=\"range\"></span></div><div class=\"tl\"><div class=\"tl-labels\">");
    let rows = |tr: &stageprof_analysis::TrackTimeline| tr.boxes.iter().map(|b| b.depth + 1).max().unwrap_or(1);
    for tr in &t.tracks {
        let shown = if tr.seen > tr.boxes.len() as u64 {
            format!(" ({} of {})", tr.boxes.len(), tr.seen)
        } else {
            String::new()
        };
        let _ = write!(page, "<div style=\"height:{}px\">{}{shown}</div>", rows(tr) * TIMELINE_ROW, escape(&tr.label));
    }
    let height: u32 = t.tracks.iter().map(|tr| rows(tr) * TIMELINE_ROW).sum();
    // x is in microseconds since the first box; the script zooms by changing the viewBox.
    let span_us = ((t1 - t0) as f64 / 1e3).max(0.001);
    let _ = write!(
        page,
        "</div><svg id=\"timeline-svg\" class=\"chart timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {span_us:.3} {height}\" preserveAspectRatio=\"none\" height=\"{height}\">"
    );
    let mut y0 = 0;
    for tr in &t.tracks {
        let gpu = matches!(tr.track, stageprof_analysis::Track::GpuStream { .. });
        for b in &tr.boxes {
            let class = if gpu { "gk".to_string() } else { format!("s{}", b.depth % 4) };
            let _ = write!(
                page,
                "<rect class=\"{class}\" x=\"{:.3}\" y=\"{}\" width=\"{:.3}\" height=\"{}\" data-n=\"{}\"/>",
                (b.start_ns - t0) as f64 / 1e3,
                y0 + b.depth * TIMELINE_ROW,
                (b.end_ns - b.start_ns) as f64 / 1e3,
                TIMELINE_ROW - 2,
                b.name
            );
        }
        y0 += rows(tr) * TIMELINE_ROW;
    }
    page.push_str("</svg></div><ol id=\"tl-names\" hidden>");
    for name in &t.names {
        let _ = write!(page, "<li>{}</li>", escape(name));
    }
    page.push_str("</ol><div id=\"tl-tip\" class=\"tip\" hidden></div></section>");
}

fn frame_chart(page: &mut String, s: &Summary) {
    let f = &s.frames;
    if f.each.len() < 2 {
        return;
    }
    let outliers = f.outliers();
    let start = f.each[0].start_ns;
    let explain = format!(
        "One bar per frame, split by the top-level stages it ran (\"outside stages\": the frame's time in none of them); a red mark flags an outlier (more than five robust deviations above the median {}): {} of {} frames. Past {FRAME_BARS} frames each bar is the slowest of its run of frames. Scroll to zoom, drag to pan; hover for the figures.",
        duration(f.duration.p50_ns),
        outliers.len(),
        f.each.len()
    );
    section(page, "frames", "Frames", &escape(&explain));
    let split = FrameSplit::new(s);
    page.push_str("<ol id=\"frame-legend\" class=\"legend\">");
    for (j, st) in split.stages.iter().enumerate() {
        let _ = write!(page, "<li><span class=\"key c{}\"></span>{}</li>", j % FRAME_COLOURS, escape(&st.name));
    }
    page.push_str("<li><span class=\"key rest\"></span>other stages</li><li><span class=\"key out\"></span>outside stages</li><li><span class=\"key unsplit\"></span>frame (stages not recorded)</li></ol>");
    // Each bar is the slowest frame of its bucket, so spikes survive.
    let per_bucket = f.each.len().div_ceil(FRAME_BARS);
    let shown: Vec<usize> = (0..f.each.len())
        .step_by(per_bucket)
        .map(|first| {
            (first..(first + per_bucket).min(f.each.len())).max_by_key(|&i| f.each[i].duration_ns).unwrap_or(first)
        })
        .collect();
    let longest = shown.iter().map(|&i| f.each[i].duration_ns).max().unwrap_or(1).max(1) as f64;
    let _ = write!(
        page,
        "<div class=\"tl-controls\" data-svg=\"frames-svg\"><button data-zoom=\"in\">zoom in</button><button data-zoom=\"out\">zoom out</button><button data-zoom=\"reset\">reset</button> <span class=\"range\"></span> (longest bar {})</div>",
        duration(longest as u64)
    );
    let _ = write!(
        page,
        "<svg id=\"frames-svg\" class=\"chart frames\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} 100\" preserveAspectRatio=\"none\" height=\"220\" data-unit=\"frame\">",
        shown.len()
    );
    let height = |ns: u64| 92.0 * ns as f64 / longest;
    for (x, &i) in shown.iter().enumerate() {
        let fr = &f.each[i];
        let _ = write!(page, "<g data-f=\"{i}\" data-d=\"{}\">", fr.duration_ns);
        let mut y = 100.0;
        for (class, ns) in split.segments(i, fr.duration_ns) {
            let h = height(ns);
            y -= h;
            let _ = write!(
                page,
                "<rect class=\"{class}\" x=\"{x}\" y=\"{y:.3}\" width=\"0.9\" height=\"{h:.3}\" data-v=\"{ns}\"/>"
            );
        }
        if outliers.binary_search(&i).is_ok() {
            let _ = write!(page, "<rect class=\"outlier\" x=\"{x}\" y=\"0\" width=\"0.9\" height=\"4\"/>");
        }
        page.push_str("</g>");
    }
    page.push_str("</svg><div id=\"frame-tip\" class=\"tip\" hidden></div>");
    if shown.iter().any(|&i| f.each[i].gpu.is_some()) {
        page.push_str("<h3>GPU busy in each frame's window</h3>");
        let _ = write!(
            page,
            "<svg id=\"frames-gpu-svg\" class=\"chart frames\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} 100\" preserveAspectRatio=\"none\" height=\"60\">",
            shown.len()
        );
        for (x, &i) in shown.iter().enumerate() {
            if let Some(g) = &f.each[i].gpu {
                let pct = g.busy_pct().clamp(0.0, 100.0);
                let _ = write!(
                    page,
                    "<rect class=\"gpu\" x=\"{x}\" y=\"{:.3}\" width=\"0.9\" height=\"{pct:.3}\"/>",
                    100.0 - pct
                );
            }
        }
        page.push_str("</svg>");
    }
    if !outliers.is_empty() {
        page.push_str("<table class=\"small\"><thead><tr><th>frame</th><th>start</th><th>wall</th><th>GPU window</th><th>device busy</th><th>own work busy</th></tr></thead><tbody>");
        for &i in outliers.iter().take(20) {
            let fr = &f.each[i];
            let gpu = |figure: fn(&FrameGpu) -> u64| fr.gpu.as_ref().map_or("-".into(), |g| duration(figure(g)));
            let _ = write!(
                page,
                "<tr><td>{i}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                duration(fr.start_ns - start),
                duration(fr.duration_ns),
                gpu(|g| g.span_ns),
                gpu(|g| g.busy_ns),
                gpu(|g| g.busy_own_ns),
            );
        }
        page.push_str("</tbody></table>");
    }
    page.push_str("</section>");
}

/// What each frame spent in the top-level stages: their per-frame times are
/// kept for the sampled frames among the first ones, in frame order.
struct FrameSplit<'a> {
    /// The longest top-level stages, drawn each in its colour.
    stages: Vec<&'a StageStats>,
    /// The other top-level stages with per-frame times.
    rest: Vec<&'a StageStats>,
    /// For each frame, its place among the frames whose stages were recorded.
    sampled_index: Vec<Option<usize>>,
}

impl<'a> FrameSplit<'a> {
    fn new(s: &'a Summary) -> FrameSplit<'a> {
        let mut tops: Vec<&StageStats> = s
            .stages
            .iter()
            .filter(|st| {
                st.depth == 0 && !st.derived && st.per_frame.as_ref().is_some_and(|p| !p.time.values.is_empty())
            })
            .collect();
        tops.sort_by_key(|st| std::cmp::Reverse(st.wall_ns));
        let rest = tops.split_off(tops.len().min(FRAME_STAGES));
        let mut next = 0;
        let sampled_index = s
            .frames
            .each
            .iter()
            .map(|fr| {
                next += usize::from(fr.sampled);
                fr.sampled.then_some(next - 1)
            })
            .collect();
        FrameSplit { stages: tops, rest, sampled_index }
    }

    /// Frame `i`'s segments, bottom up: `(class, ns)`.
    fn segments(&self, i: usize, duration_ns: u64) -> Vec<(String, u64)> {
        let at = |st: &StageStats, k: usize| st.per_frame.as_ref().and_then(|p| p.time.values.get(k).copied());
        let Some(k) =
            self.sampled_index[i].filter(|&k| self.stages.iter().chain(&self.rest).any(|st| at(st, k).is_some()))
        else {
            return vec![("unsplit".into(), duration_ns)];
        };
        let mut out: Vec<(String, u64)> = self
            .stages
            .iter()
            .enumerate()
            .map(|(j, st)| (format!("c{}", j % FRAME_COLOURS), at(st, k).unwrap_or(0)))
            .collect();
        let rest: u64 = self.rest.iter().filter_map(|st| at(st, k)).sum();
        out.push(("rest".into(), rest));
        let inside: u64 = out.iter().map(|(_, ns)| ns).sum();
        out.push(("out".into(), duration_ns.saturating_sub(inside)));
        out.retain(|(_, ns)| *ns > 0);
        out
    }
}

/// The instrumented queues, and the pipeline they join with its limiting stage.
fn queues(page: &mut String, s: &Summary) {
    if s.queues.is_empty() {
        return;
    }
    section(
        page,
        "queues",
        "Queues and the pipeline",
        "Each instrumented queue: how full it was over time, how long items stayed, and which side waited. The stage that limits the pipeline is its busiest (a thread, or workers sharing a job).",
    );
    if let (Some(l), Some(p)) = (s.limiting_stage(), &s.pipeline) {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}%"));
        let _ = write!(
            page,
            "<p class=\"limit\">Limited by <b>{}</b>: busy {:.0}%, its input full {} of the time, its output empty {}.",
            escape(&l.stage.thread),
            l.stage.busy_pct,
            pct(l.inputs_full_pct),
            pct(l.outputs_empty_pct)
        );
        if let (Some(measured), Some(predicted)) = (p.measured_per_s, p.predicted_per_s) {
            let _ = write!(page, " Throughput {measured:.1}/s measured, {predicted:.1}/s by the bottleneck model.");
        }
        if let Some(l) = p.latency {
            let _ = write!(page, " Latency {}.", escape(&super::table::latency(&l)));
        }
        page.push_str("</p>");
        pipeline_diagram(page, s, p, l.stage);
        for q in &p.undersized_queues {
            let _ = write!(page, "<p class=\"limit\">{}.</p>", super::table::undersized(q, escape));
        }
        page.push_str("<table class=\"small\"><thead><tr><th>stage (thread)</th><th>inputs</th><th>outputs</th><th>busy</th><th>per item</th>");
        for pct in stageprof_analysis::SPEEDUPS_PCT {
            let _ = write!(page, "<th>{pct}% faster</th>");
        }
        page.push_str("</tr></thead><tbody>");
        for (i, st) in p.stages.iter().enumerate() {
            let _ = write!(
                page,
                "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td>{}</td>",
                escape(&st.thread),
                escape(&st.inputs.join(", ")),
                escape(&st.outputs.join(", ")),
                st.busy_pct,
                st.service_ns.map_or_else(|| "-".to_owned(), duration)
            );
            for sp in p.speedups.iter().filter(|sp| sp.stage == i) {
                let latency = sp.latency_ns.map_or_else(String::new, |l| format!(", {}", duration(l as u64)));
                let _ = write!(page, "<td>{:.1}/s{latency}</td>", sp.throughput_per_s);
            }
            page.push_str("</tr>");
        }
        page.push_str("</tbody></table>");
    }
    page.push_str("<table class=\"small\"><thead><tr><th>queue</th><th>in</th><th>out</th><th>depth mean</th><th>max</th><th>full</th><th>empty</th><th>in queue p50</th><th>p95</th><th>senders blocked</th><th>receivers waited</th></tr></thead><tbody>");
    for q in &s.queues {
        let capacity = capacity_text(q);
        let _ = write!(
            page,
            "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{} {capacity}</td><td>{}</td><td>{:.0}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&q.name),
            q.sent,
            q.received,
            q.depth_mean,
            q.depth_max,
            q.full_pct.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%")),
            q.empty_pct,
            duration(q.residence.p50_ns),
            duration(q.residence.p95_ns),
            duration(q.sender_blocked_ns),
            duration(q.receiver_waited_ns)
        );
    }
    page.push_str("</tbody></table>");
    for q in s.queues.iter().filter(|q| q.depth_over_time.len() > 1) {
        let capacity = q.capacity.map_or_else(|| "unbounded".to_owned(), |c| format!("capacity {c}"));
        let _ = write!(page, "<h3>Queue {} over time ({capacity})</h3>", escape(&q.name));
        // A step at each point: the depth holds until the next.
        let mut points: Vec<Point> = Vec::with_capacity(2 * q.depth_over_time.len());
        for (i, &(t, d)) in q.depth_over_time.iter().enumerate() {
            if i > 0 {
                let held = q.depth_over_time[i - 1].1;
                points.push(Point { x: t as f64, y: held as f64, flag: None });
            }
            points.push(Point { x: t as f64, y: d as f64, flag: None });
        }
        page.push_str(&line_chart(&points, 900.0, 120.0, |x| duration(x as u64), |y| format!("{y:.0} in queue")));
    }
    page.push_str("</section>");
}

/// A queue's bound as its depth is read against: `of 4`, or `unbounded`.
fn capacity_text(q: &stageprof_analysis::QueueStats) -> String {
    q.capacity.map_or_else(|| "unbounded".to_owned(), |c| format!("of {c}"))
}

/// The stages in columns by their distance from the pipeline's sources,
/// the queues between them, the limiting stage marked.
fn pipeline_diagram(page: &mut String, s: &Summary, p: &Pipeline, limit: &PipelineStage) {
    let n = p.stages.len();
    let mut layer = vec![0usize; n];
    // Longest path from a source; at most n rounds, so a cycle cannot loop forever.
    for _ in 0..n {
        for (r, receiver) in p.stages.iter().enumerate() {
            for (sd, sender) in p.stages.iter().enumerate() {
                if sender.outputs.iter().any(|q| receiver.inputs.contains(q)) {
                    layer[r] = layer[r].max((layer[sd] + 1).min(n));
                }
            }
        }
    }
    page.push_str("<div class=\"pipeline\">");
    for column in 0..=layer.iter().copied().max().unwrap_or(0) {
        let queues: Vec<&String> =
            p.stages.iter().zip(&layer).filter(|&(_, &l)| l == column).flat_map(|(st, _)| &st.inputs).collect();
        if !queues.is_empty() {
            page.push_str("<div class=\"queue\">");
            for name in queues {
                let figures = s.queues.iter().find(|q| &q.name == name).map_or_else(String::new, |q| {
                    let capacity = capacity_text(q);
                    let full = q.full_pct.map_or_else(String::new, |f| format!(", full {f:.0}%"));
                    format!("<br><small>depth {:.1} {capacity}{full}</small>", q.depth_mean)
                });
                let _ = write!(page, "<div>&rarr; {}{figures}</div>", escape(name));
            }
            page.push_str("</div>");
        }
        page.push_str("<div class=\"layer\">");
        for (st, _) in p.stages.iter().zip(&layer).filter(|&(_, &l)| l == column) {
            let class = if std::ptr::eq(st, limit) { "stage limit" } else { "stage" };
            let _ = write!(
                page,
                "<div class=\"{class}\"><b>{}</b><br><small>busy {:.0}%, {} an item</small></div>",
                escape(&st.thread),
                st.busy_pct,
                st.service_ns.map_or_else(|| "-".to_owned(), duration)
            );
        }
        page.push_str("</div>");
    }
    page.push_str("</div>");
}

fn kernels_and_copies(page: &mut String, s: &Summary) {
    let Some(total) = s.gpu_total() else { return };
    let sampling = super::kernel_sampling(s).map_or(String::new(), |note| format!(" {note}"));
    let about = format!("The kernels that took longest, summed over all stages that launched them.{sampling}");
    section(page, "kernels", "Kernels", &about);
    page.push_str("<table id=\"kernel-table\" class=\"sortable\"><thead><tr><th data-type=\"text\">kernel</th><th data-type=\"text\">launch</th><th>calls</th><th>total</th><th>mean</th></tr></thead><tbody>");
    for k in s.kernel_totals().iter().take(KERNELS_LISTED) {
        page.push_str("<tr data-depth=\"0\">");
        let short = kernel_name(&k.name);
        if short == k.name {
            let _ = write!(page, "<td class=\"name\">{}</td>", escape(&shorten(&k.name, NAME_CHARS)));
        } else {
            let _ = write!(
                page,
                "<td class=\"name\" title=\"{full}\"><details><summary>{}</summary><code>{full}</code></details></td>",
                escape(&shorten(&short, NAME_CHARS)),
                full = escape(&k.name)
            );
        }
        let _ = write!(page, "<td>{}</td>", k.shape.map_or("-".into(), |s| s.to_string()));
        cell(page, "", &k.calls.to_string(), Some(k.calls as f64));
        cell(page, "", &duration(k.total_ns), Some(k.total_ns as f64));
        let mean = k.total_ns / k.calls.max(1);
        cell(page, "", &duration(mean), Some(mean as f64));
        page.push_str("</tr>");
    }
    page.push_str("</tbody></table>");
    page.push_str("<h3>Copies</h3><table class=\"small\"><thead><tr><th>direction</th><th>bytes</th><th>time</th><th>bandwidth</th></tr></thead><tbody>");
    for (k, kind) in CopyKind::ALL.iter().enumerate() {
        let (b, ns) = (total.copy_bytes[k], total.copy_ns[k]);
        if b == 0 && ns == 0 {
            continue;
        }
        let bandwidth = if ns > 0 { format!("{:.2} GB/s", b as f64 / ns as f64) } else { "-".into() };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{bandwidth}</td></tr>",
            kind.label(),
            bytes(b),
            duration(ns)
        );
    }
    let _ = write!(
        page,
        "</tbody></table><p>{} kernels, {} copies, {} memsets.</p></section>",
        total.kernels, total.copies, total.memsets
    );
}
