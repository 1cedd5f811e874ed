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
    /// No event written yet (the next one needs no comma).
    first: bool,
    error: Option<io::Error>,
}

impl<W: Write> ChromeTraceWriter<W> {
    pub fn new(out: W, pid: u32) -> Self {
        let mut w = ChromeTraceWriter { out, line: String::new(), pid, first: true, error: None };
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
        l.push_str(&self.pid.to_string());
        l.push_str(",\"tid\":");
        l.push_str(&tid.to_string());
    }

    /// Writes the process and thread names and closes the document.
    pub fn finish(mut self, catalog: &Catalog, process_label: &str) -> io::Result<W> {
        self.next_event();
        self.line.push_str("\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
        self.line.push_str(&self.pid.to_string());
        self.line.push_str(",\"args\":{\"name\":");
        push_str(&mut self.line, process_label);
        self.line.push_str("}}");
        self.emit();
        for t in catalog.threads() {
            self.next_event();
            self.line.push_str("\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":");
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
            metrics: StageMetrics::default(),
            flags: SpanFlags { unwound: true, ..SpanFlags::default() },
        };
        w.span(&span, &c);
        w.counter(&CounterSample { name: 0, thread: 0, ts_ns: 2_000, value: 0.5 }, &c);
        let v: serde_json::Value = serde_json::from_slice(&w.finish(&c, "proc").unwrap()).unwrap();
        let events = v["traceEvents"].as_array().unwrap();
        assert_eq!(events[0]["name"], "de\"code");
        assert_eq!(events[0]["ts"].as_f64(), Some(1.5));
        assert_eq!(events[0]["dur"].as_f64(), Some(3998.501));
        assert_eq!(events[0]["args"]["unwound"], true);
        assert_eq!(events[1]["ph"], "C");
        assert_eq!(events[1]["args"]["value"], 0.5);
        assert_eq!(events[2]["args"]["name"], "proc");
        assert_eq!(events[3]["args"]["name"], "main (42)");
        assert!(events.iter().all(|e| e["pid"] == 7));
    }
}
