//! Traces with the damage and variety real files have: every one is read
//! without a panic, with what is readable reported and the rest explained.

use stageprof_analysis::{Aggregator, Summary};
use stageprof_model::warning::Implausible;
use stageprof_model::Warning;
use stageprof_readers::{ReadError, ScanError};

fn report(trace: &str) -> Result<Summary, ReadError> {
    let mut agg = Aggregator::default();
    let p = stageprof_readers::read_profile(trace.as_bytes(), &mut agg)?;
    Ok(agg.summary(&p.catalog, p.run, 3))
}

fn calls(s: &Summary, path: &str) -> Option<(u64, u64)> {
    s.stages.iter().find(|st| st.path.join("/") == path).map(|st| (st.calls, st.wall_ns))
}

#[test]
fn generic_chrome_trace_with_every_phase() {
    let trace = r#"{"traceEvents": [
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "worker"}},
        {"ph": "B", "name": "load", "pid": 1, "tid": 2, "ts": 0},
        {"ph": "X", "name": "parse", "cat": "io", "pid": 1, "tid": 2, "ts": 10, "dur": 20},
        {"ph": "E", "pid": 1, "tid": 2, "ts": 100},
        {"ph": "i", "name": "marker", "s": "t", "pid": 1, "tid": 2, "ts": 50},
        {"ph": "C", "name": "queue", "pid": 1, "tid": 2, "ts": 60, "args": {"depth": 3, "bytes": 1024}},
        {"ph": "C", "name": "temperature", "pid": 1, "ts": 70, "args": {"value": 41.5}},
        {"ph": "s", "id": 1, "name": "flow", "pid": 1, "tid": 2, "ts": 20},
        {"ph": "f", "id": 1, "bp": "e", "name": "flow", "pid": 1, "tid": 2, "ts": 80}
    ]}"#;
    let s = report(trace).unwrap();
    assert_eq!(s.run.source, "chrome trace");
    assert_eq!(calls(&s, "load"), Some((1, 100_000)));
    assert_eq!(calls(&s, "load/parse"), Some((1, 20_000)));
    let counters: Vec<(&str, f64)> = s.counters.iter().map(|c| (c.name.as_str(), c.last)).collect();
    assert_eq!(counters, [("queue.bytes", 1024.0), ("queue.depth", 3.0), ("temperature", 41.5)]);
    assert!(s.run.warnings.is_empty(), "{:?}", s.run.warnings);
}

#[test]
fn bare_array_string_ids_and_long_timestamps() {
    // 19-digit fractional microseconds, string pid/tid, events out of order.
    let trace = r#"[
        {"ph": "X", "name": "inner", "pid": "Spans", "tid": "stream 7", "ts": 1790857026123456.100, "dur": 1.5},
        {"ph": "X", "name": "outer", "pid": "Spans", "tid": "stream 7", "ts": 1790857026123456.000, "dur": 10.25}
    ]"#;
    let s = report(trace).unwrap();
    assert_eq!(calls(&s, "outer"), Some((1, 10_250)));
    assert_eq!(calls(&s, "outer/inner"), Some((1, 1_500)));
    assert_eq!(s.run.duration_ns, 10_250);
}

#[test]
fn legacy_pytorch_categories_join_launches_to_kernels() {
    // 2021-style names: Operator, Runtime, Kernel, Memcpy, async flows, "external id".
    let trace = r#"{"traceEvents": [
        {"ph": "X", "cat": "user_annotation", "name": "step", "pid": 10, "tid": 10, "ts": 0, "dur": 100},
        {"ph": "X", "cat": "Operator", "name": "aten::mm", "pid": 10, "tid": 10, "ts": 5, "dur": 20, "args": {"external id": 3}},
        {"ph": "X", "cat": "Runtime", "name": "cudaLaunchKernel", "pid": 10, "tid": 10, "ts": 10, "dur": 5, "args": {"correlation": 77, "external id": 3}},
        {"ph": "X", "cat": "Runtime", "name": "cudaMemcpyAsync", "pid": 10, "tid": 10, "ts": 30, "dur": 5, "args": {"correlation": 78}},
        {"ph": "s", "cat": "async", "id": 77, "pid": 10, "tid": 10, "ts": 10},
        {"ph": "X", "cat": "Kernel", "name": "gemm", "pid": 0, "tid": "stream 7", "ts": 40, "dur": 30, "args": {"correlation": 77, "device": 0, "stream": 7}},
        {"ph": "X", "cat": "Memcpy", "name": "Memcpy DtoH (Device -> Pageable)", "pid": 0, "tid": "stream 7", "ts": 80, "dur": 10, "args": {"correlation": 78, "bytes": 4096}},
        {"ph": "f", "cat": "async", "id": 77, "pid": 0, "tid": "stream 7", "ts": 40}
    ]}"#;
    let s = report(trace).unwrap();
    let step = s.stages.iter().find(|st| st.name == "step").unwrap();
    let g = step.gpu.unwrap();
    assert_eq!((g.kernels, g.copies, g.busy_ns, g.span_ns), (1, 1, 40_000, 50_000));
    assert_eq!(g.copy_bytes, [0, 4096, 0, 0]);
    assert_eq!(s.stages.len(), 1, "operators are not stages");
    assert!(s.run.warnings.is_empty(), "{:?}", s.run.warnings);
}

#[test]
fn wrong_types_huge_integers_overlaps_and_quotes() {
    let trace = r#"{"traceEvents": [
        {"ph": "X", "name": "no time", "pid": 1, "tid": 1, "ts": {"oops": 1}, "dur": 5},
        {"ph": "X", "name": "bad dur", "pid": 1, "tid": 1, "ts": 0, "dur": "soon"},
        {"ph": "X", "name": "a", "pid": 99999999999999999999, "tid": 1, "ts": 100, "dur": 50},
        {"ph": "X", "name": "b "quoted" c", "pid": 99999999999999999999, "tid": 1, "ts": 120, "dur": 100},
        {"ph": "X", "name": 42, "pid": 1, "tid": 1, "ts": 300, "dur": 1},
        {"ph": "E", "pid": 1, "tid": 1, "ts": 400},
        {"ph": "B", "name": "never closed", "pid": 1, "tid": 1, "ts": 500},
        {"ph": "X", "name": "end", "pid": 1, "tid": 1, "ts": 600, "dur": 10, "args": 5}
    ]}"#;
    let s = report(trace).unwrap();
    // The overlapping child is cut to its parent's end.
    assert_eq!(calls(&s, "a"), Some((1, 50_000)));
    assert_eq!(calls(&s, "a/b \"quoted\" c"), Some((1, 30_000)));
    assert_eq!(calls(&s, "bad dur"), None, "a duration that is not a number leaves the event out");
    assert_eq!(calls(&s, "42"), Some((1, 1_000)));
    assert_eq!(calls(&s, "never closed"), Some((1, 110_000)));
    let w = &s.run.warnings;
    for expected in [
        Warning::RepairedNames { count: 1 },
        Warning::UnmatchedEnds { count: 1 },
        Warning::UnclosedBegins { count: 1 },
        Warning::ClippedStages { count: 1 },
    ] {
        assert!(w.contains(&expected), "missing {expected:?} in:\n{w:?}");
    }
    assert!(
        w.iter().any(|w| matches!(w, Warning::Implausible { count: 2, reason: Implausible::NoTime, name, category, .. } if name == "no time" && category.is_empty())),
        "{w:?}"
    );
}

#[test]
fn unreadable_inputs_are_errors_that_say_why() {
    for (input, why) in [
        ("", "not a JSON trace"),
        ("PK\u{3}\u{4} zip", "not a JSON trace"),
        ("{\"displayTimeUnit\": \"ns\"}", "no traceEvents array"),
        ("{\"traceEvents\": {}}", "traceEvents is not an array"),
        ("[{\"ph\": \"X\", \"na", "cut short"),
    ] {
        let err = report(input).err().unwrap_or_else(|| panic!("{input:?} was accepted"));
        assert!(err.to_string().contains(why), "{input:?}: {err}");
    }
    let variant = |input: &str| report(input).err().unwrap();
    assert!(matches!(variant(""), ReadError::Trace(ScanError::NotJson { .. })));
    assert!(matches!(variant("[{\"ph\": \"X\", \"na"), ReadError::Trace(ScanError::Truncated { offset: 1 })));
    assert!(matches!(variant("STGPROF\0\u{ff}\u{ff}\u{ff}\u{ff}"), ReadError::Native(_)));
    // Invalid UTF-8 in a name: read, with the bad bytes replaced.
    let mut bytes = br#"[{"ph": "X", "name": "caf"#.to_vec();
    bytes.push(0xe9);
    bytes.extend_from_slice(br#"", "pid": 1, "tid": 1, "ts": 0, "dur": 1}]"#);
    let mut agg = Aggregator::default();
    let p = stageprof_readers::read_profile(&bytes[..], &mut agg).unwrap();
    assert_eq!(agg.summary(&p.catalog, p.run, 3).stages[0].name, "caf\u{fffd}");
}
