//! The terminal report: a stage tree with the top bottlenecks marked, then
//! the frames, counters and anything the reader must know (dropped events,
//! warnings), in words.

use std::fmt::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use stageprof_analysis::{Bottleneck, Summary};

use crate::units::{bytes, display_path, duration, shorten, signed_bytes, terminal_safe, NAME_CHARS};

/// How the table is drawn.
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    /// Colours and bold for the bottleneck rows.
    pub color: bool,
    /// Terminal width to wrap to; `None` for no wrapping.
    pub width: Option<u16>,
}

/// Width to wrap a table to on a terminal: `$COLUMNS`, else 160.
pub fn terminal_width() -> u16 {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(160)
}

/// An empty table in stageprof's style, coloured and wrapped as asked.
pub fn new_table(opts: TableOptions) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    if opts.color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    match opts.width {
        Some(w) => table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w),
        None => table.set_content_arrangement(ContentArrangement::Disabled),
    };
    table
}

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

fn stage_table(s: &Summary, opts: TableOptions) -> Table {
    let mem = s.run.memory_tracked;
    let cpu = s.run.cpu_time;
    let gpu = s.stages.iter().any(|st| st.gpu.is_some());
    let gpu_mem = s.stages.iter().any(|st| st.gpu_mem_peak_bytes.is_some());
    let gpu_events = s.stages.iter().any(|st| st.gpu_event_ns.is_some());
    let tasks = s.stages.iter().any(|st| st.busy_ns.is_some());
    let mut header = vec!["stage", "calls", "wall", "self", "self %", "mean", "p95", "max"];
    if tasks {
        header.extend(["busy", "idle"]);
    }
    if cpu {
        header.push("cpu");
    }
    if gpu_events {
        header.push("gpu (events)");
    }
    if gpu {
        header.extend(["gpu busy", "gpu span", "kernels"]);
    }
    if gpu_mem {
        header.extend(["gpu peak", "gpu net"]);
    }
    let all_threads = s.stages.iter().any(|st| st.process_mem_peak_bytes.is_some());
    if all_threads {
        header.extend(["heap peak (all threads)", "heap net (all threads)"]);
    }
    if mem {
        header.extend(["host peak", "host net", "allocs"]);
    }
    let mut table = new_table(opts);
    table.set_header(header);
    let total_self: u64 = s.stages.iter().map(|st| st.self_ns).fold(0, u64::saturating_add).max(1);
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
        let mut row = vec![
            label,
            st.calls.to_string(),
            duration(st.wall_ns),
            duration(st.self_ns),
            format!("{:.1}", 100.0 * st.self_ns as f64 / total_self as f64),
            duration(st.call.mean_ns),
            duration(st.call.p95_ns),
            duration(st.call.max_ns),
        ];
        if tasks {
            row.push(st.busy_ns.map_or("-".into(), duration));
            row.push(st.idle_ns().map_or("-".into(), duration));
        }
        if cpu {
            row.push(st.cpu_ns.map_or("-".into(), duration));
        }
        if gpu_events {
            row.push(st.gpu_event_ns.map_or("-".into(), duration));
        }
        if gpu {
            let g = st.gpu;
            row.push(g.map_or("-".into(), |g| duration(g.busy_ns)));
            row.push(g.map_or("-".into(), |g| duration(g.span_ns)));
            row.push(g.map_or("-".into(), |g| g.kernels.to_string()));
        }
        if gpu_mem {
            row.push(st.gpu_mem_peak_bytes.map_or("-".into(), bytes));
            row.push(st.gpu_mem_net_bytes.map_or("-".into(), signed_bytes));
        }
        if all_threads {
            row.push(st.process_mem_peak_bytes.map_or("-".into(), bytes));
            row.push(st.process_mem_net_bytes.map_or("-".into(), signed_bytes));
        }
        if mem {
            row.push(st.host_mem_peak_bytes.map_or("-".into(), bytes));
            row.push(st.host_mem_net_bytes.map_or("-".into(), signed_bytes));
            row.push(st.allocs.map_or("-".into(), |a| a.to_string()));
        }
        let cells = row.into_iter().enumerate().map(|(col, text)| {
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
                100.0 * t.busy_own_ns as f64 / t.span_ns.max(1) as f64,
            );
            let idle = t.idle_ns();
            if idle > 0 {
                let pct = |v: u64| 100.0 * v as f64 / idle as f64;
                let _ = writeln!(
                    out,
                    "GPU idle within frames: {} in all: waiting for the host to launch {:.0}%, synchronization or blocking copies {:.0}%, other {:.0}%",
                    duration(idle),
                    pct(t.idle_host_ns),
                    pct(t.idle_sync_ns),
                    pct(t.idle_other_ns)
                );
            }
        }
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
    if run.source.starts_with("stageprof") {
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
        let _ = writeln!(out, "WARNING: {}", terminal_safe(w));
    }
}
