//! `stageprof diff` on profiles recorded with known per-call times: a stage
//! made 50% slower is found, with an interval that holds the truth, and the
//! CI gate exits as documented. Each test holds `one_at_a_time` throughout:
//! another test's `stageprof diff` process would preempt its spinning stages.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stageprof::{Config, Format, Profiler};

mod common;
use common::{one_at_a_time, s, spin, stageprof};

const CALLS: usize = 40;

/// A profile of `CALLS` frames: `work` spins `work_us`, `steady` 500 µs.
fn record(dir: &Path, work_us: u64) -> PathBuf {
    record_calls(dir, 1, work_us).0
}

/// Like [`record`], with `work` called `calls` times a frame; also the mean
/// wall time of a `work` call by the test's own clock (a loaded machine
/// stretches some spins).
fn record_calls(dir: &Path, calls: usize, work_us: u64) -> (PathBuf, f64) {
    let p =
        Profiler::start(Config { output_dir: dir.to_path_buf(), formats: vec![Format::Native], ..Config::default() });
    let mut work = Duration::ZERO;
    for _ in 0..CALLS {
        let _f = p.frame();
        for _ in 0..calls {
            let _s = p.stage("work");
            let start = Instant::now();
            spin(Duration::from_micros(work_us));
            work += start.elapsed();
        }
        let _s = p.stage("steady");
        spin(Duration::from_micros(500));
    }
    p.finish();
    (dir.join("profile.stgp"), work.as_secs_f64() / (CALLS * calls) as f64)
}

#[test]
fn a_slower_stage_is_found_and_fails_the_gate() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (base, base_s) = record_calls(&dir.path().join("base"), 1, 2000);
    let (new, new_s) = record_calls(&dir.path().join("new"), 1, 3000);
    let html = dir.path().join("diff.html");
    // Spinning 3 ms against 2 ms is +50%, less what preemption stretched the spins by.
    let truth = 100.0 * (new_s / base_s - 1.0);

    let out = stageprof(&["diff", s(&base), s(&new), "--format", "json", "--html", s(&html)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let work = v["stages"].as_array().unwrap().iter().find(|st| st["path"][0] == "work").unwrap();
    let wall = &work["changes"][0];
    assert_eq!((wall["measure"].as_str(), wall["verdict"].as_str()), (Some("wall"), Some("slower")));
    assert_eq!((wall["base_calls"].as_u64(), wall["new_calls"].as_u64()), (Some(CALLS as u64), Some(CALLS as u64)));
    // The stage's own overhead is microseconds a call.
    let change = wall["change_pct"].as_f64().unwrap();
    let (lo, hi) = (wall["interval_pct"][0].as_f64().unwrap(), wall["interval_pct"][1].as_f64().unwrap());
    assert!((change - truth).abs() < 1.0 && truth > 25.0, "{change}, by the test's clock {truth}");
    assert!(lo - 0.5 <= truth && truth <= hi + 0.5 && lo < change && change < hi, "{lo}..{hi}, truth {truth}");
    assert_eq!(v["frames"]["verdict"], "slower");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<tr class=\"slower\">") && page.contains(">work</td>"), "the HTML view marks it");

    // The gate fails (status 3, the stage named) where the change is more
    // than allowed with confidence: allowing a point under the interval's
    // lower end fails, a point over it does not. (Fixed limits such as 20
    // and 80% would test the load on the machine: preemption widens the interval.)
    let (under, over) = (format!("{:.1}", lo - 1.0), format!("{:.1}", lo + 1.0));
    let out = stageprof(&["diff", s(&base), s(&new), "--fail-on-regression", &under]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("regression: work wall +") && !stderr.contains("steady"), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("work") && text.contains("slower") && text.contains("95% interval"), "{text}");
    let out = stageprof(&["diff", s(&base), s(&new), "--fail-on-regression", &over]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The other way round it is faster, and the gate passes.
    let out = stageprof(&["diff", s(&new), s(&base), "--format", "json", "--fail-on-regression", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let work = v["stages"].as_array().unwrap().iter().find(|st| st["path"][0] == "work").unwrap();
    assert_eq!(work["changes"][0]["verdict"], "faster");
}

#[test]
fn a_directory_is_the_ranks_of_one_job_pooled() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let ranks = dir.path().join("ranks");
    std::fs::create_dir(&ranks).unwrap();
    for r in 0..2 {
        let p = record(&dir.path().join(format!("r{r}")), 1000);
        std::fs::copy(p, ranks.join(format!("rank{r}.stgp"))).unwrap();
    }
    let single = record(&dir.path().join("single"), 1000);
    let out = stageprof(&["diff", s(&single), s(&ranks), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let work = v["stages"].as_array().unwrap().iter().find(|st| st["path"][0] == "work").unwrap();
    assert_eq!(work["changes"][0]["new_calls"], 2 * CALLS as u64);
}

#[test]
fn runs_with_no_stage_in_common_and_too_few_calls_say_so() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    let p = Profiler::start(Config { output_dir: other.clone(), formats: vec![Format::Native], ..Config::default() });
    for _ in 0..3 {
        let _s = p.stage("elsewhere");
    }
    p.finish();
    let other = other.join("profile.stgp");
    let base = record(&dir.path().join("base"), 100);
    let out = stageprof(&["diff", s(&base), s(&other)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no stage in common (base: steady, work; new: elsewhere)"), "{stderr}");

    let out = stageprof(&["diff", s(&other), s(&other)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("too few calls") && text.contains("fewer than 5"), "{text}");
}

#[test]
fn a_stage_called_more_often_each_call_as_fast_is_a_regression_per_frame() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (base, new) =
        (record_calls(&dir.path().join("base"), 2, 400).0, record_calls(&dir.path().join("new"), 4, 400).0);
    let out = stageprof(&["diff", s(&base), s(&new), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let work = v["stages"].as_array().unwrap().iter().find(|st| st["path"][0] == "work").unwrap();
    let changes = work["changes"].as_array().unwrap();
    let measure = |m: &str| changes.iter().find(|c| c["measure"] == m).unwrap();
    let (wall, per_frame) = (measure("wall"), measure("per frame"));
    assert_eq!(
        (wall["base_calls"].as_u64(), wall["new_calls"].as_u64()),
        (Some(2 * CALLS as u64), Some(4 * CALLS as u64))
    );
    // Each call spins as long; a busy machine moves the per-call times a little.
    assert!(wall["change_pct"].as_f64().unwrap().abs() < 30.0, "each call as fast: {wall}");
    // Every call ran in a frame: a frame's mean is its calls times a call's mean.
    let mean = |c: &serde_json::Value, side: &str| c[format!("{side}_mean_ns")].as_f64().unwrap();
    assert!((mean(per_frame, "base") - 2.0 * mean(wall, "base")).abs() <= 2.0, "{per_frame} {wall}");
    assert!((mean(per_frame, "new") - 4.0 * mean(wall, "new")).abs() <= 4.0, "{per_frame} {wall}");
    assert_eq!(
        (per_frame["base_calls"].as_u64(), per_frame["new_calls"].as_u64()),
        (Some(CALLS as u64), Some(CALLS as u64))
    );
    assert_eq!(
        (per_frame["base_calls_per_frame"].as_f64(), per_frame["new_calls_per_frame"].as_f64()),
        (Some(2.0), Some(4.0))
    );
    let change = per_frame["change_pct"].as_f64().unwrap();
    assert!((60.0..140.0).contains(&change) && per_frame["verdict"] == "slower", "{per_frame}");

    let out = stageprof(&["diff", s(&base), s(&new), "--fail-on-regression", "40"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("regression: work per frame +"), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    // The per-frame row's calls cell: calls a frame, base to new.
    let cells = |l: &str| l.split('┆').map(|c| c.trim().to_owned()).collect::<Vec<_>>();
    assert!(text.lines().any(|l| cells(l).get(1..3) == Some(&["per frame".into(), "2 → 4".into()][..])), "{text}");
    assert!(text.contains("calls: work 2 → 4 calls a frame (40 frames → 40)"), "{text}");
}

/// Three frames of one `step` holding ten `work` calls of `work_us` each.
fn record_nested(dir: &Path, work_us: u64) -> PathBuf {
    let p =
        Profiler::start(Config { output_dir: dir.to_path_buf(), formats: vec![Format::Native], ..Config::default() });
    for _ in 0..3 {
        let _f = p.frame();
        let _step = p.stage("step");
        for _ in 0..10 {
            let _s = p.stage("work");
            spin(Duration::from_micros(work_us));
        }
    }
    p.finish();
    dir.join("profile.stgp")
}

#[test]
fn a_stage_with_too_few_calls_names_the_nested_stages_that_carry_the_change() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (record_nested(&dir.path().join("base"), 300), record_nested(&dir.path().join("new"), 900));
    let out = stageprof(&["diff", s(&base), s(&new)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("too few calls for step;")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("its nested stages carry the change: work wall +"), "{line}");
}
