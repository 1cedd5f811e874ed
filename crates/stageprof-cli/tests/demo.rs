//! `stageprof demo`: a short real run, and bad flags.

use std::process::Command;

fn stageprof(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stageprof"))
        .args(args)
        .current_dir(dir)
        .env_remove("STAGEPROF_OUT")
        .output()
        .unwrap()
}

#[test]
fn a_short_demo_reconstructs_and_reports_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let out = stageprof(dir.path(), &["demo", "--frames", "1", "--views", "2", "--out", "o"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reconstruction: depth error against the known surface") && stderr.contains(": ok"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o/summary.json")).unwrap()).unwrap();
    let paths: Vec<String> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join("/"))
        .collect();
    for stage in [
        "undistortion",
        "sparse_matching",
        "dense_matching",
        "depth_estimation/build_cost_volume/warp",
        "depth_estimation/extract_depth",
        "fusion",
        "surface_reconstruction",
    ] {
        assert!(paths.iter().any(|p| p == stage), "no stage {stage} in {paths:?}");
    }
    assert_eq!(summary["frames"]["count"], 1);
    let page = std::fs::read_to_string(dir.path().join("o/report.html")).unwrap();
    assert!(page.contains(">extract_depth</td>") && page.contains("id=\"bottlenecks\""));
}

/// The header cells of the stage table in `text`.
fn table_header(text: &str) -> Vec<String> {
    let line = text.lines().find(|l| l.starts_with("│ stage")).unwrap_or_else(|| panic!("no table in\n{text}"));
    line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

#[test]
fn the_demo_fits_100_and_120_columns_and_wide_shows_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let run = |columns: &str, extra: &[&str]| {
        let mut args = vec!["demo", "--frames", "1", "--views", "2", "--out", "o"];
        args.extend(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_stageprof"))
            .args(&args)
            .current_dir(dir.path())
            .env_remove("STAGEPROF_OUT")
            .env("COLUMNS", columns)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    for width in [100, 120] {
        let text = run(&width.to_string(), &[]);
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= width, "a line of {widest} characters in {width} columns:\n{text}");
        assert_eq!(table_header(&text)[..6], ["stage", "calls", "wall", "self %", "mean", "p95"]);
    }
    // Every figure the demo measures is a column with --wide, whatever the width.
    let wide = run("100", &["--wide"]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o/summary.json")).unwrap()).unwrap();
    let measured = |key: &str| summary["stages"].as_array().unwrap().iter().any(|s| !s[key].is_null());
    let header = table_header(&wide);
    for (key, label) in [
        ("self_ns", "self"),
        ("max_ns", "max"),
        ("process_mem_peak_bytes", "heap peak (all threads)"),
        ("host_mem_net_bytes", "host net"),
        ("allocs", "allocs"),
    ] {
        assert!(measured(key), "the demo measures no {key}");
        assert!(header.iter().any(|h| h == label), "no {label} in {header:?}");
    }
    assert!(wide.lines().any(|l| l.chars().count() > 150), "--wide is not wider than 150 characters");
    let chosen = run("100", &["--columns", "calls,p95,allocs"]);
    assert_eq!(table_header(&chosen), ["stage", "calls", "p95", "allocs"]);
}

#[test]
fn bad_flags_name_the_flag_exit_2_and_write_nothing() {
    for (args, flag) in [
        (&["demo", "--depth-batch", "0"][..], "--depth-batch"),
        (&["demo", "--frames", "-1"][..], "--frames"),
        (&["demo", "--memory", "hoard"][..], "--memory"),
        (&["demo", "--sweep", "batch=1,2"][..], "--sweep"),
        (&["demo", "--sweep", "depth-batch=1,x"][..], "--sweep"),
        (&["demo", "--views", "1"][..], "--views"),
        (&["demo", "--columns", "calls,speed"][..], "\"speed\""),
        (&["demo", "--wide", "--columns", "calls"][..], "--columns"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = stageprof(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} wrote something");
    }
}

#[test]
fn a_sweep_runs_once_per_batch_size_and_concludes() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        stageprof(dir.path(), &["demo", "--frames", "1", "--views", "2", "--sweep", "depth-batch=1,4", "--out", "o"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("depth-batch sweep:") && stderr.contains("best batch size: "), "{stderr}");
    for b in [1, 4] {
        assert!(dir.path().join(format!("o/depth-batch-{b}/summary.json")).exists());
    }
}
