//! The terminal report: a stage tree with the top bottlenecks marked, then
//! the frames, counters and anything the reader must know (dropped events,
//! warnings), in words.

use std::fmt::Write;

use comfy_table::{Attribute, Cell, CellAlignment, Color, Table};
use stageprof_analysis::{figures, Bottleneck, StageFigure, Summary};

use crate::terminal::{new_table, TableOptions};
use crate::units::{bytes, display_path, duration, figure_text, shorten, signed_bytes, terminal_safe, NAME_CHARS};

const RANK_COLORS: [Color; 3] = [Color::Red, Color::Yellow, Color::Magenta];

/// The report as text, ready to print.
pub fn render_table(s: &Summary, opts: TableOptions) -> String {
    let mut out = String::new();
    let run = &s.run;
    let _ = writeln!(
        out,
        "stageprof: {} stages on {} thread{} over {}{}",
        s.stages.len(),
        s.threads,
        if s.threads == 1 { "" } else { "s" },
        duration(run.duration_ns),
        match run.end_reason.as_str() {
            "finish" | "" => String::new(),
            reason => format!(" (ended by {reason})"),
        }
    );
    if s.stages.is_empty() {
        out.push_str("no stages were recorded\n");
    } else {
        out.push_str(&stage_table(s, opts).to_string());
        out.push('\n');
    }
    describe_bottlenecks("top bottlenecks by self time", &s.bottlenecks, s, &mut out);
    describe_bottlenecks(
        "top bottlenecks by GPU time (work launched by the stage itself)",
        &s.gpu_bottlenecks,
        s,
        &mut out,
    );
    describe_frames_and_counters(s, &mut out);
    describe_run(s, &mut out);
    out
}

/// The terminal table's columns after the stage's name, each shown where some stage has it.
const TABLE_COLUMNS: &[&StageFigure] = &[
    &figures::CALLS,
    &figures::WALL,
    &figures::SELF,
    &figures::SELF_PCT,
    &figures::MEAN,
    &figures::P95,
    &figures::MAX,
    &figures::BUSY,
    &figures::IDLE,
    &figures::CPU,
    &figures::GPU_EVENTS,
    &figures::GPU_BUSY,
    &figures::GPU_SPAN,
    &figures::GPU_KERNELS,
    &figures::GPU_MEM_PEAK,
    &figures::GPU_MEM_NET,
    &figures::PROCESS_MEM_PEAK,
    &figures::PROCESS_MEM_NET,
    &figures::HOST_MEM_PEAK,
    &figures::HOST_MEM_NET,
    &figures::ALLOCS,
];

fn stage_table(s: &Summary, opts: TableOptions) -> Table {
    let columns: Vec<&StageFigure> = TABLE_COLUMNS.iter().copied().filter(|f| f.measured_in(&s.stages)).collect();
    let mut table = new_table(opts);
    table.set_header(std::iter::once("stage").chain(columns.iter().map(|f| f.label)));
    for (i, st) in s.stages.iter().enumerate() {
        let rank = s.bottlenecks.iter().find(|b| b.stage == i).map(|b| b.rank);
        let mark = rank.map_or(String::new(), |r| format!("#{r} "));
        let mut flags = String::new();
        if st.unwound > 0 {
            let _ = write!(flags, " [{} unwound]", st.unwound);
        }
        if st.unfinished > 0 {
            let _ = write!(flags, " [{} unfinished]", st.unfinished);
        }
        let label = format!(
            "{}{}{}{}",
            "  ".repeat(st.depth as usize),
            mark,
            terminal_safe(&shorten(&st.name, NAME_CHARS)),
            flags
        );
        let row = std::iter::once(label).chain(columns.iter().map(|f| figure_text(f.unit, f.value(st))));
        let cells = row.enumerate().map(|(col, text)| {
            let mut cell = Cell::new(text);
            if col > 0 {
                cell = cell.set_alignment(CellAlignment::Right);
            }
            match rank {
                Some(r) if opts.color => cell.fg(RANK_COLORS[(r as usize - 1) % 3]).add_attribute(Attribute::Bold),
                _ => cell,
            }
        });
        table.add_row(cells);
    }
    table
}

fn describe_bottlenecks(title: &str, ranked: &[Bottleneck], s: &Summary, out: &mut String) {
    if ranked.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for b in ranked {
        let st = &s.stages[b.stage];
        let path = terminal_safe(&display_path(&st.path, " / "));
        let _ = write!(
            out,
            "  #{} {}: {} ({:.1}% of all stages') in {} calls",
            b.rank,
            path,
            duration(b.self_ns),
            b.share_pct,
            st.calls
        );
        if let Some(peak) = st.gpu_mem_peak_bytes {
            let _ = write!(out, ", GPU memory peak {}", bytes(peak));
        }
        if let Some(peak) = b.host_mem_peak_bytes {
            let _ = write!(out, ", host memory peak {}", bytes(peak));
        }
        if let Some(net) = st.host_mem_net_bytes.filter(|&n| n != 0) {
            let _ = write!(out, ", net {} left live over its calls", signed_bytes(net));
        }
        out.push('\n');
        for k in st.top_kernels.iter().take(3) {
            let shape = k.shape.map_or(String::new(), |s| format!(" ({s})"));
            let _ = writeln!(
                out,
                "       {} x{}: {}{shape}",
                duration(k.total_ns),
                k.calls,
                terminal_safe(&shorten(&k.name, NAME_CHARS))
            );
        }
    }
}

/// The three longest frames, when there are enough to tell them apart.
fn describe_slowest_frames(f: &stageprof_analysis::FrameStats, out: &mut String) {
    if f.each.len() < 4 {
        return;
    }
    let mut slow: Vec<(usize, &stageprof_analysis::FrameRecord)> = f.each.iter().enumerate().collect();
    slow.sort_by_key(|(i, fr)| (std::cmp::Reverse(fr.duration_ns), *i));
    let listed: Vec<String> = slow
        .iter()
        .take(3)
        .map(|(i, fr)| match fr.gpu {
            Some(g) => format!("#{i} {} (GPU busy {:.0}%)", duration(fr.duration_ns), g.busy_pct()),
            None => format!("#{i} {}", duration(fr.duration_ns)),
        })
        .collect();
    let _ = writeln!(out, "slowest frames: {}", listed.join(", "));
}

fn describe_frames_and_counters(s: &Summary, out: &mut String) {
    let f = &s.frames;
    if f.count > 0 {
        let d = &f.duration;
        let _ = writeln!(
            out,
            "frames: {} ({} sampled), mean {}, p50 {}, p95 {}, p99 {}, max {}",
            f.count,
            f.sampled,
            duration(d.mean_ns),
            duration(d.p50_ns),
            duration(d.p95_ns),
            duration(d.p99_ns),
            duration(d.max_ns)
        );
        describe_slowest_frames(f, out);
        if let (Some(g), Some(t)) = (&f.gpu_span, &f.gpu) {
            let _ = writeln!(
                out,
                "frames on the GPU: window mean {}, p95 {}, max {}; device busy {:.1}% of the windows ({:.1}% with the frames' own work)",
                duration(g.mean_ns),
                duration(g.p95_ns),
                duration(g.max_ns),
                t.busy_pct(),
                t.busy_own_pct(),
            );
            if let Some([host, sync, other]) = t.idle_shares_pct() {
                let _ = writeln!(
                    out,
                    "GPU idle within frames: {} in all: waiting for the host to launch {host:.0}%, synchronization or blocking copies {sync:.0}%, other {other:.0}%",
                    duration(t.idle_ns()),
                );
            }
        }
    }
    for q in &s.queues {
        let full = q.full_pct.map_or_else(|| "unbounded".to_owned(), |p| format!("full {p:.0}%"));
        let capacity = q.capacity.map_or_else(String::new, |c| format!(" of {c}"));
        let _ = writeln!(
            out,
            "queue {}: {} in, {} out; depth mean {:.1}{capacity}, max {}, {full}, empty {:.0}% of the time; \
             in the queue p50 {}, p95 {}; senders blocked {}, receivers waited {}",
            terminal_safe(&q.name),
            q.sent,
            q.received,
            q.depth_mean,
            q.depth_max,
            q.empty_pct,
            duration(q.residence.p50_ns),
            duration(q.residence.p95_ns),
            duration(q.sender_blocked_ns),
            duration(q.receiver_waited_ns),
        );
    }
    if let Some(l) = s.limiting_stage() {
        let pct = |p: Option<f64>, what: &str| p.map_or_else(String::new, |p| format!(", {what} {p:.0}% of the time"));
        let _ = writeln!(
            out,
            "pipeline: limited by {} (busy {:.0}%{}{})",
            terminal_safe(&l.stage.thread),
            l.stage.busy_pct,
            pct(l.inputs_full_pct, "its input full"),
            pct(l.outputs_empty_pct, "its output empty"),
        );
        if let Some(p) = &s.pipeline {
            let per_s = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"));
            let gains: Vec<String> = p
                .speedups
                .iter()
                .filter(|sp| std::ptr::eq(&p.stages[sp.stage], l.stage))
                .map(|sp| format!("{}% faster: {:.1}/s", sp.faster_pct, sp.throughput_per_s))
                .collect();
            let _ = writeln!(
                out,
                "pipeline throughput: {}/s measured, {}/s predicted; {} {}",
                per_s(p.measured_per_s),
                per_s(p.predicted_per_s),
                terminal_safe(&l.stage.thread),
                gains.join(", "),
            );
        }
    }
    if let Some(l) = s.pipeline.as_ref().and_then(|p| p.latency) {
        let _ = writeln!(out, "pipeline latency {}", latency(&l));
    }
    for q in s.pipeline.iter().flat_map(|p| &p.undersized_queues) {
        let _ = writeln!(out, "{}", undersized(q, terminal_safe));
    }
    for c in &s.counters {
        let _ = writeln!(
            out,
            "counter {}: {} samples, min {}, mean {:.3}, max {}, last {}",
            terminal_safe(&c.name),
            c.samples,
            c.min,
            c.mean,
            c.max,
            c.last
        );
    }
}

fn describe_run(s: &Summary, out: &mut String) {
    let run = &s.run;
    if let Some(rss) = run.peak_rss_bytes {
        let _ = write!(out, "peak resident memory: {}", bytes(rss));
        if let Some((i, b)) = s.peak_stage_host_mem() {
            let path = terminal_safe(&display_path(&s.stages[i].path, " / "));
            let _ = write!(out, "; largest stage heap peak: {} in {path}", bytes(b));
        }
        out.push('\n');
    }
    // How to get what is missing: only the recorder can be told.
    if run.source == "stageprof (python)" {
        if !run.memory_tracked {
            out.push_str("host memory per stage: off (stageprof.init(memory=True) turns it on)\n");
        }
        if !run.cpu_time {
            out.push_str("cpu time per stage: off (stageprof.init(cpu_time=True) turns it on)\n");
        }
    } else if run.source.starts_with("stageprof") {
        if !run.memory_tracked {
            out.push_str(
                "host memory per stage: not measured (install stageprof::TrackingAllocator as the global allocator)\n",
            );
        }
        if !run.cpu_time {
            out.push_str("cpu time per stage: off (cpu_time = true in stageprof.toml turns it on)\n");
        }
    }
    if run.dropped_records > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} records were dropped because the recording buffer was full; raise buffer_mb",
            run.dropped_records
        );
    }
    for w in &run.warnings {
        let _ = writeln!(out, "WARNING: {}", terminal_safe(&w.to_string()));
        if let Some(fix) = w.fix() {
            let _ = writeln!(out, "  to fix: {fix}");
        }
    }
}

/// One line on a queue too small for the stages beside it; `name` makes its name safe to show.
pub(crate) fn undersized(q: &stageprof_analysis::UndersizedQueue, name: impl Fn(&str) -> String) -> String {
    format!(
        "queue {} (capacity {}) looks too small: its senders were blocked {:.0}% and its receivers waited {:.0}% \
         of the pipeline's time, the stages beside it taking turns; a larger queue would let them absorb each other's bursts",
        name(&q.name),
        q.capacity,
        q.sender_blocked_pct,
        q.receiver_waited_pct
    )
}

/// The pipeline's end-to-end latency in words (the table's and the HTML's).
pub(crate) fn latency(l: &stageprof_analysis::DurationStats) -> String {
    format!(
        "(an item's time from the first queue to the last stage): p50 {}, p95 {}, max {} over {} items",
        duration(l.p50_ns),
        duration(l.p95_ns),
        duration(l.max_ns),
        l.count
    )
}
