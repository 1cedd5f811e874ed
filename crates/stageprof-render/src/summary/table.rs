//! The terminal report: a stage tree with the top bottlenecks marked, then
//! the frames, counters and anything the reader must know (dropped events,
//! warnings), in words.

use std::fmt::Write;

use comfy_table::{Attribute, Cell, CellAlignment, Color, Table};
use stageprof_analysis::{figures, Bottleneck, StageFigure, StageStats, Summary, HOST_MEM_NOTABLE_BYTES};

use crate::terminal::{column_chars, new_table, Columns, TableOptions};
use crate::units::{
    bytes, display_path, duration, figure_text, kernel_name, raw_events_kept, shorten, signed_bytes, terminal_safe,
    NAME_CHARS,
};

const RANK_COLORS: [Color; 3] = [Color::Red, Color::Yellow, Color::Magenta];

/// The report as text, ready to print: the stage table fits `opts.width`
/// (unless `opts.columns` asks for more than fits) and the words are wrapped to it.
pub fn render_table(s: &Summary, opts: &TableOptions) -> String {
    let mut words = String::new();
    let run = &s.run;
    let _ = writeln!(
        words,
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
    let mut out = wrap(&words, opts.width);
    words.clear();
    if s.stages.is_empty() {
        out.push_str("no stages were recorded\n");
    } else {
        let (table, columns) = stage_table(s, opts);
        out.push_str(&table.to_string());
        out.push('\n');
        if columns.iter().any(|f| f.key == figures::GPU_EVENTS.key) {
            words.push_str(GPU_EVENTS_NOTE);
        }
    }
    describe_bottlenecks("top bottlenecks by self time", &s.bottlenecks, s, &mut words);
    describe_bottlenecks(
        "top bottlenecks by GPU time (work launched by the stage itself)",
        &s.gpu_bottlenecks,
        s,
        &mut words,
    );
    describe_frames_and_counters(s, &mut words);
    describe_run(s, &mut words);
    out.push_str(&wrap(&words, opts.width));
    out
}

/// What the event-timed GPU column means, under the table that shows it.
const GPU_EVENTS_NOTE: &str = "* gpu (events): time on the stage's CUDA stream from its begin to its end; it includes \
    work queued before the stage and, while the GPU idles, the host's time; `-` where kernel tracing saw the stage \
    launch nothing\n";

/// The columns shown by default, most wanted first: those at the end give
/// way when the table would not fit (event-timed GPU time only where no
/// GPU work was traced).
const FIT_COLUMNS: &[&StageFigure] = &[
    &figures::CALLS,
    &figures::WALL,
    &figures::SELF_PCT,
    &figures::MEAN,
    &figures::P95,
    &figures::GPU_BUSY,
    &figures::GPU_EVENTS,
    &figures::GPU_MEM_PEAK,
    &figures::MEM_PEAK,
];

/// The terminal table's columns with `--wide`, each shown where some stage has it.
const WIDE_COLUMNS: &[&StageFigure] = &[
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
    &figures::GPU_TRACED_CALLS,
    &figures::GPU_MEM_PEAK,
    &figures::GPU_MEM_NET,
    &figures::GPU_MEM_CALLS,
    &figures::PROCESS_MEM_PEAK,
    &figures::PROCESS_MEM_NET,
    &figures::HOST_MEM_PEAK,
    &figures::HOST_MEM_NET,
    &figures::ALLOCS,
];

/// The fewest characters a stage's name is cut to before columns give way.
const NAME_MIN_CHARS: usize = 24;

fn chosen_columns(s: &Summary, columns: &Columns) -> Vec<&'static StageFigure> {
    let measured = |f: &&&StageFigure| f.measured_in(&s.stages);
    match columns {
        Columns::Fit => {
            let traced = figures::GPU_BUSY.measured_in(&s.stages) || figures::GPU_KERNELS.measured_in(&s.stages);
            let wanted = |f: &&&StageFigure| !(traced && f.key == figures::GPU_EVENTS.key);
            FIT_COLUMNS.iter().filter(measured).filter(wanted).copied().collect()
        }
        Columns::Wide => WIDE_COLUMNS.iter().filter(measured).copied().collect(),
        Columns::Only(chosen) => chosen.clone(),
    }
}

/// A stage's name cell: its tree indent, its bottleneck rank, its name cut
/// in the middle to leave at most `max_chars` for all of it, and its flags.
fn name_cell(st: &StageStats, rank: Option<u32>, max_chars: usize) -> String {
    let indent = "  ".repeat(st.depth as usize);
    let mark = rank.map_or(String::new(), |r| format!("#{r} "));
    let mut flags = String::new();
    if st.unwound > 0 {
        let _ = write!(flags, " [{} unwound]", st.unwound);
    }
    if st.unfinished > 0 {
        let _ = write!(flags, " [{} unfinished]", st.unfinished);
    }
    let room = max_chars.saturating_sub(indent.len() + mark.len() + flags.chars().count()).clamp(8, NAME_CHARS);
    format!("{indent}{mark}{}{flags}", terminal_safe(&shorten(&st.name, room)))
}

/// The stage table and the columns it shows. With the default columns and a
/// width, columns at the end of [`FIT_COLUMNS`] give way until the names
/// keep [`NAME_MIN_CHARS`]; then the names are cut to what is left.
fn stage_table(s: &Summary, opts: &TableOptions) -> (Table, Vec<&'static StageFigure>) {
    let mut columns = chosen_columns(s, &opts.columns);
    let cells: Vec<Vec<String>> =
        s.stages.iter().map(|st| columns.iter().map(|f| figure_text(f.unit, f.value(st))).collect()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| cells.iter().map(|row| row[c].chars().count()).chain([columns[c].label.len()]).max().unwrap_or(0))
        .collect();
    let mut name_chars = NAME_CHARS;
    if let Some(width) = opts.width.map(usize::from) {
        let name_room =
            |n: usize| width.saturating_sub(1 + widths[..n].iter().map(|&w| column_chars(w)).sum::<usize>());
        let mut shown = columns.len();
        if matches!(opts.columns, Columns::Fit) {
            while shown > 2 && name_room(shown) < column_chars(NAME_MIN_CHARS) {
                shown -= 1;
            }
        }
        columns.truncate(shown);
        name_chars = name_room(shown).saturating_sub(column_chars(0));
    }
    let mut table = new_table(opts);
    // The event-timed GPU column's header points to what it means, under the table.
    let label = |f: &&StageFigure| match f.key == figures::GPU_EVENTS.key {
        true => format!("{}*", f.label),
        false => f.label.to_owned(),
    };
    table.set_header(std::iter::once("stage".to_owned()).chain(columns.iter().map(label)));
    for (i, (st, texts)) in s.stages.iter().zip(cells).enumerate() {
        let rank = s.bottlenecks.iter().find(|b| b.stage == i).map(|b| b.rank);
        let row = std::iter::once(name_cell(st, rank, name_chars)).chain(texts.into_iter().take(columns.len()));
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
    (table, columns)
}

/// Lines longer than `width` broken at spaces; a broken line goes on
/// indented two more than it began. A word longer than a whole line (a
/// long stage path) is cut in the middle to fit.
fn wrap(text: &str, width: Option<u16>) -> String {
    let Some(width) = width.map(usize::from) else { return text.to_owned() };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let mut used = 0;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let word = shorten(word, width.saturating_sub(indent + 2).max(8));
            let chars = word.chars().count();
            if used == 0 {
                out.push_str(&line[..indent]);
                used = indent;
            } else if used + 1 + chars > width {
                out.push('\n');
                out.push_str(&" ".repeat(indent + 2));
                used = indent + 2;
            } else {
                out.push(' ');
                used += 1;
            }
            out.push_str(&word);
            used += chars;
        }
        out.push('\n');
    }
    out
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
        if let Some(peak) = b.host_mem_peak_bytes.filter(|&p| p >= HOST_MEM_NOTABLE_BYTES) {
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
                terminal_safe(&shorten(&kernel_name(&k.name), NAME_CHARS))
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
        if let Some(note) = super::kernel_sampling(s) {
            let _ = writeln!(out, "{note}");
        }
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
    if let Some(b) = &run.bounded {
        let _ = writeln!(
            out,
            "raw events kept (max_disk_mb): {}; the figures above cover the whole run",
            raw_events_kept(b)
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_analysis::StageStats;
    use stageprof_model::GpuMetrics;

    /// Three stages, one nested deep with a long name, with GPU and memory figures.
    fn summary() -> Summary {
        let stage = |name: &str, depth: u32, gpu: Option<GpuMetrics>| StageStats {
            name: name.into(),
            path: vec![name.into()],
            depth,
            calls: 7,
            wall_ns: 123_456_789,
            self_ns: 23_456_789,
            self_pct: Some(12.5),
            cpu_ns: Some(99_000_000),
            host_mem_peak_bytes: Some(5 << 20),
            host_mem_net_bytes: Some(-(1 << 20)),
            gpu,
            gpu_event_ns: Some(800_000_000),
            gpu_mem_peak_bytes: Some(3 << 30),
            ..StageStats::default()
        };
        let launched = GpuMetrics { busy_ns: 50_000_000, kernels: 4, ..GpuMetrics::default() };
        Summary {
            stages: vec![
                stage("load", 0, Some(launched)),
                stage("idle_on_the_gpu", 1, Some(GpuMetrics::default())),
                stage(&format!("deep_{}_end", "x".repeat(150)), 6, Some(launched)),
            ],
            ..Summary::default()
        }
    }

    fn widest_line(text: &str) -> usize {
        text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    fn header(text: &str) -> Vec<String> {
        let line = text.lines().find(|l| l.starts_with("│ stage")).unwrap();
        line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn the_table_fits_the_width_and_cuts_names_in_the_middle() {
        let s = summary();
        for width in [100, 120] {
            let opts = TableOptions { width: Some(width), ..TableOptions::plain() };
            let text = render_table(&s, &opts);
            assert!(widest_line(&text) <= usize::from(width), "{width}:\n{text}");
            let row = text.lines().find(|l| l.contains("deep_")).unwrap();
            assert!(row.contains("deep_x") && row.contains("x_end") && row.contains('…'), "{row}");
            // The indent is kept: six levels of two spaces after the border's space.
            assert!(row.starts_with(&format!("│ {}deep_", "  ".repeat(6))), "{row}");
        }
        let text = render_table(&s, &TableOptions { width: Some(120), ..TableOptions::plain() });
        assert_eq!(
            header(&text),
            ["stage", "calls", "wall", "self %", "mean", "p95", "gpu busy", "gpu peak", "mem peak"]
        );
    }

    #[test]
    fn wide_shows_every_measured_column_and_columns_choose() {
        let s = summary();
        let wide = render_table(&s, &TableOptions { columns: Columns::Wide, ..TableOptions::plain() });
        let measured: Vec<&str> = WIDE_COLUMNS.iter().filter(|f| f.measured_in(&s.stages)).map(|f| f.label).collect();
        // The event-timed column's header carries the mark of its note.
        let shown: Vec<String> = header(&wide)[1..].iter().map(|h| h.trim_end_matches('*').to_owned()).collect();
        assert_eq!(shown, measured);
        assert!(header(&wide).contains(&"gpu (events)*".to_owned()) && wide.contains("* gpu (events): "));
        assert!(measured.contains(&"cpu") && measured.contains(&"host net"));
        let Ok(chosen) = Columns::parse("p95,cpu") else { panic!() };
        let text = render_table(&s, &TableOptions { columns: chosen, width: Some(100), ..TableOptions::plain() });
        assert_eq!(header(&text), ["stage", "p95", "cpu"]);
    }

    #[test]
    fn a_stage_that_launched_nothing_has_no_gpu_time() {
        let s = summary();
        let text = render_table(&s, &TableOptions { columns: Columns::Wide, ..TableOptions::plain() });
        let cells = |name: &str| {
            let row = text.lines().find(|l| l.contains(name)).unwrap();
            row.split(['│', '┆']).map(str::trim).map(str::to_owned).collect::<Vec<_>>()
        };
        let col = |label: &str| header(&text).iter().position(|h| h == label).unwrap() + 1;
        assert_eq!(cells("load")[col("gpu (events)*")], "800.00 ms");
        assert_eq!(cells("load")[col("gpu busy")], "50.00 ms");
        assert_eq!(cells("idle_on_the_gpu")[col("gpu (events)*")], "-");
        assert_eq!(cells("idle_on_the_gpu")[col("gpu busy")], "-");
        assert_eq!(cells("idle_on_the_gpu")[col("kernels")], "0");
        assert!(text.contains("* gpu (events): time on the stage's CUDA stream"), "{text}");
    }

    #[test]
    fn words_wrap_at_spaces_and_words_longer_than_a_line_are_cut() {
        let text = "  #1 a b c dddddddddddddddddddddd e\n";
        // A continued line has 12 - 4 = 8 characters for the long word.
        assert_eq!(wrap(text, Some(12)), "  #1 a b c\n    dddd…ddd\n    e\n");
        assert_eq!(wrap(text, None), text);
    }

    #[test]
    fn frames_with_kernels_traced_in_some_only_are_said_in_the_table_and_the_page() {
        let mut s = summary();
        s.frames.count = 10;
        s.frames.durations = vec![1_000; 10];
        let said = |s: &Summary| {
            let table = render_table(s, &TableOptions::plain()).contains("Kernels were traced in 3 of 10 frames");
            #[cfg(feature = "html")]
            assert_eq!(table, crate::render_html(s).contains("Kernels were traced in 3 of 10 frames"));
            table
        };
        s.frames.gpu_traced = Some(3);
        assert!(said(&s));
        s.frames.gpu_traced = Some(10);
        assert!(!said(&s));
    }
}
