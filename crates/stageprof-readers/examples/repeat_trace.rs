//! Builds a large trace from a real one by repeating its events with shifted
//! timestamps and renumbered ids (correlation, External id, flow ids), laid
//! out as Kineto lays out its files, for benchmarks:
//! `cargo run --release -p stageprof-readers --example repeat_trace -- IN.json[.gz] COPIES OUT.json`

use std::io::{BufWriter, Read, Write};

use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, copies, output] = &args[..] else {
        eprintln!("usage: repeat_trace IN.json[.gz] COPIES OUT.json");
        std::process::exit(2);
    };
    let copies: u64 = copies.parse().expect("COPIES is a number");
    let mut raw = Vec::new();
    std::fs::File::open(input).expect("open input").read_to_end(&mut raw).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut plain).unwrap();
        raw = plain;
    }
    let doc: Value = serde_json::from_slice(&raw).expect("input is JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let ts = |e: &Value| e["ts"].as_f64();
    let first = events.iter().filter_map(ts).fold(f64::INFINITY, f64::min);
    let last = events.iter().filter_map(|e| Some(ts(e)? + e["dur"].as_f64().unwrap_or(0.0))).fold(0.0, f64::max);
    let period = (last - first) * 1.01;
    let mut out = BufWriter::new(std::fs::File::create(output).expect("create output"));
    write!(out, "{{\"schemaVersion\": 1, \"traceEvents\": [").unwrap();
    let mut sep = "";
    for k in 0..copies {
        for e in events {
            let mut e = e.clone();
            if let Some(t) = ts(&e) {
                // Three decimals, as Kineto writes them.
                e["ts"] = serde_json::Number::from_f64(((t + period * k as f64) * 1000.0).round() / 1000.0)
                    .map_or(Value::Null, Value::Number);
            }
            for key in ["correlation", "External id"] {
                if let Some(v) = e["args"][key].as_i64() {
                    e["args"][key] = Value::from(v + (k as i64) * 100_000_000);
                }
            }
            if let Some(v) = e["id"].as_i64() {
                e["id"] = Value::from(v + (k as i64) * 100_000_000);
            }
            writeln!(out, "{sep}").unwrap();
            write_kineto_style(&mut out, &e);
            sep = ",";
        }
    }
    writeln!(out, "\n], \"traceName\": \"repeated\"}}").unwrap();
}

/// Python's separators (`", "`, `": "`), as Kineto writes values.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn spaced(w: &mut impl Write, v: &Value) {
    let mut ser = serde_json::Serializer::with_formatter(w, Spaced);
    serde::Serialize::serialize(v, &mut ser).unwrap();
}

/// One event the way Kineto writes it: top-level fields on one line, args on their own.
fn write_kineto_style(out: &mut impl Write, e: &Value) {
    let Some(obj) = e.as_object() else { return spaced(out, e) };
    write!(out, "  {{\n    ").unwrap();
    let mut first = true;
    for (k, v) in obj.iter().filter(|(k, _)| *k != "args") {
        if !first {
            write!(out, ", ").unwrap();
        }
        first = false;
        write!(out, "{}: ", Value::from(k.as_str())).unwrap();
        spaced(out, v);
    }
    if let Some(args) = obj.get("args").and_then(Value::as_object) {
        write!(out, ",\n    \"args\": {{\n      ").unwrap();
        let mut first = true;
        for (k, v) in args {
            if !first {
                write!(out, ", ").unwrap();
            }
            first = false;
            write!(out, "{}: ", Value::from(k.as_str())).unwrap();
            spaced(out, v);
        }
        write!(out, "\n    }}").unwrap();
    }
    write!(out, "\n  }}").unwrap();
}
