//! Chrome trace JSON (the Trace Event Format), readable by Perfetto UI and
//! chrome://tracing. Written as a stream, so a trace of any length costs a
//! line buffer of memory.

use std::collections::BTreeSet;
use std::io::{self, Write};

use stageprof_model::{
    Catalog, CounterSample, GpuActivity, GpuWork, LaunchShape, MemoryLevel, MemoryPool, ProfileSink, QueueEvent,
    QueueOp, Span, SpanKind,
};

use crate::json::{push_f64, push_str, push_us};

/// Streams spans and counters as trace events. Call [`ChromeTraceWriter::finish`]
/// to close the document; the first write error is kept and returned there.
pub struct ChromeTraceWriter<W: Write> {
    out: W,
    line: String,
    pid: u32,
    /// No event written yet (the next one needs no comma).
    first: bool,
    error: Option<io::Error>,
    /// `(device, stream)` of the GPU work written, to name their tracks.
    gpu_tracks: BTreeSet<(u32, u32)>,
    /// The last level drawn of each allocator (repeats are left out).
    memory_drawn: [Option<i64>; 2],
}

/// GPU device `d` is drawn as process `GPU_PID_BASE + d`, its streams as its threads.
const GPU_PID_BASE: u64 = 1 << 32;

impl<W: Write> ChromeTraceWriter<W> {
    /// A writer of a Chrome trace to `out`, its events under process `pid`.
    pub fn new(out: W, pid: u32) -> Self {
        let mut w = ChromeTraceWriter {
            out,
            line: String::new(),
            pid,
            first: true,
            error: None,
            gpu_tracks: BTreeSet::new(),
            memory_drawn: [None; 2],
        };
        w.line.push_str("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
        w.emit();
        w
    }

    fn emit(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(self.line.as_bytes()) {
                self.error = Some(e);
            }
        }
        self.line.clear();
    }

    /// Starts the next event of the array.
    fn next_event(&mut self) {
        self.line.push_str(if self.first { "\n{" } else { ",\n{" });
        self.first = false;
    }

    fn event_head(&mut self, name: &str, cat: &str, ph: char, ts_ns: u64, tid: u32) {
        self.event_head_in(u64::from(self.pid), name, cat, ph, ts_ns, tid);
    }

    fn event_head_in(&mut self, pid: u64, name: &str, cat: &str, ph: char, ts_ns: u64, tid: u32) {
        self.next_event();
        let l = &mut self.line;
        l.push_str("\"name\":");
        push_str(l, name);
        l.push_str(",\"cat\":\"");
        l.push_str(cat);
        l.push_str("\",\"ph\":\"");
        l.push(ph);
        l.push_str("\",\"ts\":");
        push_us(l, ts_ns);
        l.push_str(",\"pid\":");
        l.push_str(&pid.to_string());
        l.push_str(",\"tid\":");
        l.push_str(&tid.to_string());
    }

    /// A `process_name` or `thread_name` metadata event.
    fn name_event(&mut self, what: &str, pid: u64, tid: Option<u32>, label: &str) {
        self.next_event();
        let l = &mut self.line;
        l.push_str(&format!("\"name\":\"{what}\",\"ph\":\"M\",\"pid\":{pid}"));
        if let Some(tid) = tid {
            l.push_str(&format!(",\"tid\":{tid}"));
        }
        l.push_str(",\"args\":{\"name\":");
        push_str(l, label);
        l.push_str("}}");
        self.emit();
    }

    /// Writes the process and thread names and closes the document.
    pub fn finish(mut self, catalog: &Catalog, process_label: &str) -> io::Result<W> {
        let pid = u64::from(self.pid);
        self.name_event("process_name", pid, None, process_label);
        for t in catalog.threads() {
            let label =
                if t.name.is_empty() { format!("thread {}", t.os_tid) } else { format!("{} ({})", t.name, t.os_tid) };
            self.name_event("thread_name", pid, Some(t.index), &label);
        }
        let tracks = std::mem::take(&mut self.gpu_tracks);
        let devices: BTreeSet<u32> = tracks.iter().map(|&(d, _)| d).collect();
        for d in devices {
            self.name_event("process_name", GPU_PID_BASE + u64::from(d), None, &format!("GPU {d}"));
        }
        for (d, s) in tracks {
            self.name_event("thread_name", GPU_PID_BASE + u64::from(d), Some(s), &format!("stream {s}"));
        }
        self.line.push_str("\n]}\n");
        self.emit();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> ProfileSink for ChromeTraceWriter<W> {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        let (cat, name) = match span.kind {
            SpanKind::Stage => ("stage", catalog.name(span.name)),
            SpanKind::Frame => ("frame", catalog.name(span.name)),
        };
        self.event_head(name, cat, 'X', span.start_ns, span.thread);
        let l = &mut self.line;
        l.push_str(",\"dur\":");
        push_us(l, span.duration_ns());
        l.push_str(",\"args\":{\"self_ns\":");
        l.push_str(&span.self_ns.to_string());
        if let Some(path) = span.path {
            l.push_str(",\"path\":");
            push_str(l, &catalog.path_names(path).join(" / "));
        }
        if let Some(cpu) = span.metrics.cpu_ns {
            l.push_str(&format!(",\"cpu_ns\":{cpu}"));
        }
        if let Some(m) = span.metrics.mem {
            l.push_str(&format!(
                ",\"alloc_bytes\":{},\"allocs\":{},\"host_mem_peak_bytes\":{},\"host_mem_net_bytes\":{}",
                m.alloc_bytes, m.allocs, m.peak_bytes, m.net_bytes
            ));
        }
        for (flag, key) in [(span.flags.unwound, "unwound"), (span.flags.unfinished, "unfinished")] {
            if flag {
                l.push_str(&format!(",\"{key}\":true"));
            }
        }
        if span.kind == SpanKind::Frame {
            l.push_str(&format!(",\"sampled\":{}", span.flags.sampled));
        }
        l.push_str("}}");
        self.emit();
    }

    fn gpu_activity(&mut self, a: &GpuActivity, catalog: &Catalog) {
        self.gpu_tracks.insert((a.device, a.stream));
        let cat = match a.work {
            GpuWork::Kernel => "kernel",
            GpuWork::Copy(_) => "memcpy",
            GpuWork::Memset => "memset",
        };
        let pid = GPU_PID_BASE + u64::from(a.device);
        self.event_head_in(pid, catalog.name(a.name), cat, 'X', a.start_ns, a.stream);
        let l = &mut self.line;
        l.push_str(",\"dur\":");
        push_us(l, a.end_ns.saturating_sub(a.start_ns));
        l.push_str(",\"args\":{\"stage\":");
        match a.path {
            Some(path) => push_str(l, &catalog.path_names(path).join(" / ")),
            None => l.push_str("null"),
        }
        if let GpuWork::Copy(kind) = a.work {
            l.push_str(&format!(",\"kind\":\"{}\",\"bytes\":{}", kind.label(), a.bytes));
        }
        if let Some(LaunchShape { grid: [gx, gy, gz], block: [bx, by, bz] }) = a.shape {
            l.push_str(&format!(",\"grid\":[{gx},{gy},{gz}],\"block\":[{bx},{by},{bz}]"));
        }
        l.push_str("}}");
        self.emit();
    }

    /// An allocator's level at an instant, as a counter track of the
    /// process (`host memory`, `gpu memory`); levels known only to lie
    /// within a call are not drawn.
    fn memory_level(&mut self, level: &MemoryLevel) {
        let drawn = &mut self.memory_drawn[usize::from(level.pool == MemoryPool::Gpu)];
        if level.start_ns != level.end_ns || *drawn == Some(level.bytes) {
            return;
        }
        *drawn = Some(level.bytes);
        let name = match level.pool {
            MemoryPool::Host => "host memory",
            MemoryPool::Gpu => "gpu memory",
        };
        self.event_head(name, "memory", 'C', level.start_ns, 0);
        self.line.push_str(&format!(",\"args\":{{\"bytes\":{}}}}}", level.bytes));
        self.emit();
    }

    /// A queue's depth as a counter track (`queue <name>`): after each
    /// operation that read it (an end reads it on its first operation 10 µs
    /// or more after its last read; the events come in each thread's order,
    /// not in time order, so the depths between cannot be counted on here).
    fn queue(&mut self, event: &QueueEvent, catalog: &Catalog) {
        let depth = match event.op {
            QueueOp::Opened { .. } => 0,
            QueueOp::Sent { depth: Some(depth), .. } | QueueOp::Received { depth: Some(depth), .. } => depth,
            QueueOp::Sent { depth: None, .. } | QueueOp::Received { depth: None, .. } => return,
        };
        let name = format!("queue {}", catalog.name(event.queue));
        self.event_head(&name, "queue", 'C', event.ts_ns, 0);
        self.line.push_str(&format!(",\"args\":{{\"depth\":{depth}}}}}"));
        self.emit();
    }

    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        self.event_head(catalog.name(sample.name), "counter", 'C', sample.ts_ns, sample.thread);
        self.line.push_str(",\"args\":{\"value\":");
        push_f64(&mut self.line, sample.value);
        self.line.push_str("}}");
        self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_model::{SpanFlags, StageMetrics, ThreadInfo};

    #[test]
    fn writes_a_valid_document_even_with_no_events() {
        let out = ChromeTraceWriter::new(Vec::new(), 1).finish(&Catalog::default(), "p").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["traceEvents"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn spans_counters_and_names() {
        let mut c = Catalog::default();
        c.set_name(0, "de\"code");
        c.add_thread(ThreadInfo { index: 0, os_tid: 42, name: "main".into() });
        let path = c.intern_path(None, 0);
        let mut w = ChromeTraceWriter::new(Vec::new(), 7);
        let span = Span {
            thread: 0,
            kind: SpanKind::Stage,
            name: 0,
            path: Some(path),
            depth: 0,
            start_ns: 1_500,
            end_ns: 4_000_001,
            self_ns: 10,
            frame: None,
            metrics: StageMetrics::default(),
            flags: SpanFlags { unwound: true, ..SpanFlags::default() },
        };
        w.span(&span, &c);
        w.counter(&CounterSample { name: 0, thread: 0, ts_ns: 2_000, value: 0.5 }, &c);
        w.queue(
            &QueueEvent { queue: 0, thread: 0, ts_ns: 3_000, op: QueueOp::Sent { blocked_ns: 0, depth: Some(3) } },
            &c,
        );
        let v: serde_json::Value = serde_json::from_slice(&w.finish(&c, "proc").unwrap()).unwrap();
        let events = v["traceEvents"].as_array().unwrap();
        assert_eq!(events[0]["name"], "de\"code");
        assert_eq!(events[0]["ts"].as_f64(), Some(1.5));
        assert_eq!(events[0]["dur"].as_f64(), Some(3998.501));
        assert_eq!(events[0]["args"]["unwound"], true);
        assert_eq!(events[1]["ph"], "C");
        assert_eq!(events[1]["args"]["value"], 0.5);
        assert_eq!((events[2]["name"].as_str(), events[2]["ph"].as_str()), (Some("queue de\"code"), Some("C")));
        assert_eq!(events[2]["args"]["depth"], 3);
        assert_eq!(events[3]["args"]["name"], "proc");
        assert_eq!(events[4]["args"]["name"], "main (42)");
        assert!(events.iter().all(|e| e["pid"] == 7));
    }
}
