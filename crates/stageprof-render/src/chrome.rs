//! Chrome trace JSON (the Trace Event Format), readable by Perfetto UI and
//! chrome://tracing. Written as a stream, so a trace of any length costs a
//! line buffer of memory.

use std::io::{self, Write};

use stageprof_model::{Catalog, CounterSample, ProfileSink, Span, SpanKind};

use crate::json::{push_f64, push_str, push_us};

/// Streams spans and counters as trace events. Call [`ChromeTraceWriter::finish`]
/// to close the document; the first write error is kept and returned there.
pub struct ChromeTraceWriter<W: Write> {
    out: W,
    line: String,
    pid: u32,
    error: Option<io::Error>,
}

impl<W: Write> ChromeTraceWriter<W> {
    pub fn new(out: W, pid: u32) -> Self {
        let mut w = ChromeTraceWriter { out, line: String::new(), pid, error: None };
        // An empty metadata event first, so every later event can start with a comma.
        w.line.push_str("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n{\"name\":\"trace\",\"ph\":\"M\",\"pid\":");
        w.line.push_str(&pid.to_string());
        w.line.push_str(",\"args\":{}}");
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

    fn event_head(&mut self, name: &str, cat: &str, ph: char, ts_ns: u64, tid: u32) {
        let l = &mut self.line;
        l.push_str(",\n{\"name\":");
        push_str(l, name);
        l.push_str(",\"cat\":\"");
        l.push_str(cat);
        l.push_str("\",\"ph\":\"");
        l.push(ph);
        l.push_str("\",\"ts\":");
        push_us(l, ts_ns);
        l.push_str(",\"pid\":");
        l.push_str(&self.pid.to_string());
        l.push_str(",\"tid\":");
        l.push_str(&tid.to_string());
    }

    /// Writes the process and thread names and closes the document.
    pub fn finish(mut self, catalog: &Catalog, process_label: &str) -> io::Result<W> {
        self.line.push_str(",\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
        self.line.push_str(&self.pid.to_string());
        self.line.push_str(",\"args\":{\"name\":");
        push_str(&mut self.line, process_label);
        self.line.push_str("}}");
        self.emit();
        for t in catalog.threads() {
            self.line.push_str(",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":");
            self.line.push_str(&self.pid.to_string());
            self.line.push_str(",\"tid\":");
            self.line.push_str(&t.index.to_string());
            self.line.push_str(",\"args\":{\"name\":");
            let label =
                if t.name.is_empty() { format!("thread {}", t.os_tid) } else { format!("{} ({})", t.name, t.os_tid) };
            push_str(&mut self.line, &label);
            self.line.push_str("}}");
            self.emit();
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

    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        self.event_head(catalog.name(sample.name), "counter", 'C', sample.ts_ns, sample.thread);
        self.line.push_str(",\"args\":{\"value\":");
        push_f64(&mut self.line, sample.value);
        self.line.push_str("}}");
        self.emit();
    }
}
