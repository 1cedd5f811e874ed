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
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a stageprof native file"));
    let out = stageprof(&["report", "/nonexistent.stgp"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.stgp"));
    let out = stageprof(&["report", json.to_str().unwrap(), "--top", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
