//! `stageprof report` on profiles recorded by the library, and on bad files.

use std::path::Path;
use std::process::Command;

use stageprof::{Config, Format, Profiler};

fn record(dir: &Path) -> std::path::PathBuf {
    let p =
        Profiler::start(Config { output_dir: dir.to_path_buf(), formats: vec![Format::Native], ..Config::default() });
    for _ in 0..5 {
        let _f = p.frame();
        let _a = p.stage("decode");
        for _ in 0..2 {
            let _b = p.stage("convert \"fast\"");
        }
    }
    p.finish();
    dir.join("profile.stgp")
}

fn stageprof(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stageprof")).args(args).output().unwrap()
}

#[test]
fn json_and_text_reports_of_a_recorded_profile() {
    let dir = tempfile::tempdir().unwrap();
    let file = record(dir.path());
    let out = stageprof(&["report", file.to_str().unwrap(), "--format", "json", "--top", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stages"][0]["name"], "decode");
    assert_eq!(v["stages"][0]["calls"], 5);
    assert_eq!(v["stages"][1]["name"], "convert \"fast\"");
    assert_eq!(v["stages"][1]["calls"], 10);
    assert_eq!(v["frames"]["count"], 5);
    assert_eq!(v["bottlenecks"].as_array().unwrap().len(), 1);

    let chrome = dir.path().join("t.json");
    let out = stageprof(&["report", file.to_str().unwrap(), "--chrome", chrome.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("decode") && text.contains("top bottlenecks by self time"), "{text}");
    let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(chrome).unwrap()).unwrap();
    assert_eq!(trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count(), 20);
}

#[test]
fn truncated_profile_reports_what_it_has_and_where_it_broke() {
    let dir = tempfile::tempdir().unwrap();
    let file = record(dir.path());
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.stgp");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let out = stageprof(&["report", cut.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("truncated") && stderr.contains("byte"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stages"][0]["calls"], 5);
    assert_eq!(v["end_reason"], "truncated");
}

#[test]
fn bad_inputs_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("x.json");
    std::fs::write(&json, "{}").unwrap();
    let out = stageprof(&["report", json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no traceEvents array"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are not traces").unwrap();
    let out = stageprof(&["report", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a JSON trace: it starts with \"these are not traces\""));
    let out = stageprof(&["report", "/nonexistent.stgp"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.stgp"));
    let out = stageprof(&["report", json.to_str().unwrap(), "--top", "0"]);
    assert_eq!(out.status.code(), Some(2));
    // An HTML report that cannot be written names its path.
    let trace = kineto_fixture("training.pt.trace.json.gz");
    let out = stageprof(&["report", &trace, "--html", "/nonexistent/dir/r.html"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write /nonexistent/dir/r.html"));
}

fn kineto_fixture(name: &str) -> String {
    format!("{}/../stageprof-readers/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn pytorch_traces_are_told_apart_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    // A gzipped trace under a misleading name, and the same trace plain.
    let gz = dir.path().join("trace.txt");
    std::fs::copy(kineto_fixture("training.pt.trace.json.gz"), &gz).unwrap();
    let mut plain = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_end(&mut plain).unwrap();
    let json = dir.path().join("trace.bin");
    std::fs::write(&json, &plain).unwrap();
    for file in [&gz, &json] {
        let out = stageprof(&["report", file.to_str().unwrap(), "--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["source"].as_str().unwrap().starts_with("pytorch profiler (kineto)"));
        assert_eq!(v["devices"], serde_json::json!(["NVIDIA H200"]));
        let backward = v["stages"].as_array().unwrap().iter().find(|s| s["name"] == "backward").unwrap();
        assert_eq!(backward["calls"], 3);
        assert!(backward["gpu_busy_ns"].as_u64().unwrap() > 30_000_000, "{backward}");
        let data = v["stages"].as_array().unwrap().iter().find(|s| s["name"] == "data").unwrap();
        assert_eq!(data["copies"]["htod"]["bytes"], 3 * (128 << 20) + 3 * 8192 * 8);
        assert_eq!(v["gpu_bottlenecks"][0]["name"], "backward");
        assert!(v["frames"]["gpu_busy_pct"].as_f64().unwrap() > 90.0);
        // The CUDA allocator's highest `Total Allocated` in the trace, reached in backward.
        let gpu_peak = &v["memory_peaks"][1];
        assert_eq!((&gpu_peak["pool"], &gpu_peak["bytes"]), (&"gpu".into(), &3_251_716_608u64.into()));
        assert_eq!(gpu_peak["stage_path"], serde_json::json!(["backward"]));
    }

    // Cut short, as when the profiled process dies: what was read is reported, with where it broke.
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, &plain[..plain.len() * 2 / 3]).unwrap();
    let out = stageprof(&["report", cut.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the file is cut short: it breaks off in the event at byte"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v["stages"].as_array().unwrap().is_empty());
}

#[test]
fn several_traces_are_ranks_side_by_side_with_the_slowest_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let trace = |rank: u32, allreduce_us: u32| {
        format!(
            r#"{{"distributedInfo": {{"rank": {rank}, "world_size": 2}}, "traceEvents": [
                {{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 1000}},
                {{"ph": "X", "cat": "user_annotation", "name": "forward", "pid": 1, "tid": 1, "ts": 0, "dur": 300}},
                {{"ph": "X", "cat": "user_annotation", "name": "allreduce", "pid": 1, "tid": 1, "ts": 300, "dur": {allreduce_us}}}
            ]}}"#
        )
    };
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    std::fs::write(&a, trace(3, 100)).unwrap();
    std::fs::write(&b, trace(1, 600)).unwrap();
    let out = stageprof(&["report", a.to_str().unwrap(), b.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ranks"][0]["rank"], 3);
    assert_eq!(v["ranks"][1]["rank"], 1);
    assert_eq!(v["ranks"][1]["summary"]["stages"][0]["name"], "allreduce");
    let rows = v["side_by_side"].as_array().unwrap();
    let allreduce = rows.iter().find(|r| r["path"][0] == "allreduce").unwrap();
    assert_eq!(allreduce["wall_ns"], serde_json::json!([100_000, 600_000]));
    assert_eq!(allreduce["slowest_rank"], 1);
    assert_eq!(allreduce["spread"], 6.0);
    let forward = rows.iter().find(|r| r["path"][0] == "forward").unwrap();
    assert_eq!(forward["spread"], 1.0);

    let out = stageprof(&["report", a.to_str().unwrap(), b.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("== rank 3: ") && text.contains("== rank 1: "), "{text}");
    assert!(text.contains("600.0 µs ◀") && text.contains("6.00x"), "{text}");
}

/// The HTML report of a profile whose stage names are markup: every name is
/// shown as text, and the only script and SVG elements are the report's own.
#[test]
fn html_report_escapes_every_name() {
    let hostile = ["<script>alert(1)</script>", "q\"uo'te", "</svg><b>", "]]><img src=x onerror=alert(2)>", "a&b"];
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Native],
        ..Config::default()
    });
    for _ in 0..4 {
        let _f = p.frame();
        for name in hostile {
            let _outer = p.stage(name);
            let _inner = p.stage("inner");
        }
    }
    p.finish();
    let html = dir.path().join("r.html");
    let out =
        stageprof(&["report", dir.path().join("profile.stgp").to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(html).unwrap();
    assert_eq!(page.matches("<script").count(), 1, "only the report's own script");
    assert_eq!(page.matches("</svg>").count(), page.matches("<svg").count());
    assert!(!page.contains("<img") && !page.contains("<b>") && !page.contains("q\"uo"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("]]&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.contains("q&quot;uo&#39;te") && page.contains("a&amp;b"));
    // Each hostile stage is a row of the stage table, with its nested stage under it.
    assert_eq!(page.matches("<tr data-depth=\"0\">").count(), hostile.len());
    assert_eq!(page.matches("<tr data-depth=\"1\">").count(), hostile.len());
}

/// Two ranks of one job in one page: a column per rank, the slower flagged per stage.
#[test]
fn html_report_of_two_ranks_flags_the_straggler() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("ranks.html");
    let (a, b) = (kineto_fixture("inference.pt.trace.json.gz"), kineto_fixture("training.pt.trace.json.gz"));
    let out = stageprof(&["report", &a, &b, "--html", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(html).unwrap();
    let ranks = &page[page.find("<section id=\"ranks\">").expect("a ranks section")..];
    let ranks = &ranks[..ranks.find("</section>").unwrap()];
    assert_eq!(ranks.matches("<th title=").count(), 2, "a column per rank");
    let rows = ranks.matches("<tr><td class=\"name\">").count();
    assert!(rows > 10, "{rows} stages");
    assert_eq!(ranks.matches("class=\"straggler\"").count(), rows, "one slowest rank per stage");
}

/// The Chrome trace of a PyTorch trace has its GPU work on GPU tracks: every
/// kernel, copy and memset of the input (counted here with serde_json), on
/// a named process per device and thread per stream, each with the stage
/// that launched it.
#[test]
fn chrome_trace_of_a_pytorch_trace_has_gpu_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let input = kineto_fixture("training.pt.trace.json.gz");
    let chrome = dir.path().join("c.json");
    let out = stageprof(&["report", &input, "--format", "json", "--chrome", chrome.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let trace: serde_json::Value =
        serde_json::from_reader(flate2::read::GzDecoder::new(std::fs::File::open(&input).unwrap())).unwrap();
    let count_in = |cat: &str| trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["cat"] == cat).count();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&chrome).unwrap()).unwrap();
    let events = written["traceEvents"].as_array().unwrap();
    let gpu: Vec<&serde_json::Value> = events.iter().filter(|e| e["pid"] == 1u64 << 32 && e["ph"] == "X").collect();
    let count_out = |cat: &str| gpu.iter().filter(|e| e["cat"] == cat).count();
    assert_eq!(count_out("kernel"), count_in("kernel"));
    assert_eq!(count_out("memcpy"), count_in("gpu_memcpy"));
    assert_eq!(count_out("memset"), count_in("gpu_memset"));
    assert!(gpu.iter().all(|e| e["tid"] == 7), "the fixture's one stream");
    let names: Vec<&str> =
        events.iter().filter(|e| e["ph"] == "M").map(|e| e["args"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"GPU 0") && names.contains(&"stream 7"), "{names:?}");
    // Each kernel names its launching stage: backward's own match the summary's count.
    let backward = summary["stages"].as_array().unwrap().iter().find(|s| s["name"] == "backward").unwrap();
    let launched = gpu.iter().filter(|e| e["cat"] == "kernel" && e["args"]["stage"] == "backward").count();
    assert_eq!(launched as u64, backward["gpu_kernels"].as_u64().unwrap());
}

#[test]
fn a_directory_of_rank_subdirectories_is_reported_as_ranks() {
    let dir = tempfile::tempdir().unwrap();
    for r in 0..2 {
        record(&dir.path().join(format!("rank-{r}")));
    }
    std::fs::write(dir.path().join("notes.txt"), "not a profile").unwrap();
    let out = stageprof(&["report", dir.path().to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = v["ranks"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with("rank-0/profile.stgp") && files[1].ends_with("rank-1/profile.stgp"), "{files:?}");
    let empty = tempfile::tempdir().unwrap();
    let out = stageprof(&["report", empty.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no profiles"));
}

/// A directory's JSON that holds no trace (notes, a configuration) is
/// skipped with a warning naming it; named by itself, or alone in its
/// directory, it is an error.
#[test]
fn a_directorys_json_that_is_no_trace_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    for r in 0..2 {
        std::fs::copy(
            kineto_fixture(&format!("frames/ddp_rank{r}.pt.trace.json.gz")),
            dir.path().join(format!("rank{r}.json.gz")),
        )
        .unwrap();
    }
    let notes = dir.path().join("notes.json");
    std::fs::write(&notes, r#"{"lr": 0.1, "events": []}"#).unwrap();
    // Gzipped the same: told apart by content, not by name.
    let zipped = dir.path().join("config.json.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&zipped).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, br#"{"seed": 7}"#).unwrap();
    gz.finish().unwrap();
    let out = stageprof(&["report", dir.path().to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for skipped in [&notes, &zipped] {
        assert!(stderr.contains(&format!("skipped {}: JSON, but not a trace", skipped.display())), "{stderr}");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = v["ranks"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert!(
        files.len() == 2 && files[0].ends_with("rank0.json.gz") && files[1].ends_with("rank1.json.gz"),
        "{files:?}"
    );
    // Diff reads a directory the same way: the two ranks against themselves.
    let d = dir.path().to_str().unwrap();
    let out = stageprof(&["diff", d, d, "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"));

    let out = stageprof(&["report", notes.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a trace"));
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(&notes, alone.path().join("notes.json")).unwrap();
    let out = stageprof(&["report", alone.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("skipped") && stderr.contains("holds no profiles"), "{stderr}");
}

/// A run's output directory: its native profile, not the summary and the
/// Chrome trace written beside it from the same run.
#[test]
fn a_run_directory_is_its_native_profile() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Native, Format::Summary, Format::Chrome],
        ..Config::default()
    });
    for _ in 0..3 {
        let _s = p.stage("step");
    }
    p.finish();
    assert!(dir.path().join("summary.json").is_file() && dir.path().join("trace.json").is_file());
    let out = stageprof(&["report", dir.path().to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("ranks").is_none(), "one profile, not ranks: {v}");
    assert_eq!(v["stages"][0]["calls"], 3);
}

/// A bounded run's directory: its kept parts are one profile (not ranks),
/// read in the order they were written, and the warning names them.
#[test]
fn a_bounded_run_directory_is_one_profile_of_its_kept_parts() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Native, Format::Summary],
        max_disk_mb: Some(1),
        gpu: stageprof::GpuTrace::Off,
        rss_sample_ms: 0,
        ..Config::default()
    });
    for _ in 0..100 {
        let _f = p.frame();
        for _ in 0..1000 {
            let _s = p.stage("step");
        }
    }
    let report = p.finish();
    let kept = report.summary.unwrap().run.bounded.unwrap();
    let numbers: Vec<String> = kept.kept.iter().map(|k| k.path.rsplit('.').nth(1).unwrap().to_owned()).collect();
    assert!(numbers.len() > 1 && kept.parts_written > numbers.len() as u64, "{kept:?}");
    let out = stageprof(&["report", dir.path().to_str().unwrap(), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("ranks").is_none(), "one profile, not ranks");
    assert!(stderr.contains(&format!("these figures cover parts {}", numbers.join(", "))), "{stderr}");
    assert!(stderr.contains(&format!("profile.{{{}}}.stgp", numbers.join(","))), "{stderr}");
    let calls = v["stages"][0]["calls"].as_u64().unwrap();
    assert!(calls > 0 && calls < 100_000, "{calls}");
}
