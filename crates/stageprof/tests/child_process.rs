//! Ends and faults that need a process of their own: SIGINT mid-run,
//! `process::exit`, a panic through `main`, a bad config, the disk filling
//! up mid-run. Each test re-runs this binary as the pipeline (an
//! ignored test, selected by name), injects the fault, and reads what the
//! pipeline wrote.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

fn child_command(test: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env("STAGEPROF_CHILD", test)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn spawn_child(test: &str, out: &Path, env: &[(&str, &str)]) -> Child {
    child_command(test, env).env("STAGEPROF_OUT", out).spawn().unwrap()
}

fn is_child(test: &str) -> bool {
    std::env::var("STAGEPROF_CHILD").is_ok_and(|t| t == test)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn calls(summary: &serde_json::Value, name: &str) -> u64 {
    summary["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["calls"].as_u64().unwrap()
}

#[test]
#[ignore = "the pipeline run by the signal tests"]
fn sigint_child() {
    if !is_child("sigint_child") {
        return;
    }
    let _session = stageprof::init();
    let mut done = 0u64;
    loop {
        let _frame = stageprof::frame();
        for _ in 0..100 {
            let _s = stageprof::scope!("step");
        }
        done += 100;
        // The stages above have ended: everything up to `done` must be in the outputs.
        println!("done {done}");
        let _wait = stageprof::scope!("wait");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn sigint_mid_run_leaves_complete_outputs() {
    interrupt_mid_run(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_mid_run_leaves_complete_outputs() {
    interrupt_mid_run(libc::SIGTERM, "SIGTERM");
}

fn interrupt_mid_run(signal: i32, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child("sigint_child", dir.path(), &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_done = 0u64;
    while last_done < 5_000 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(n) = line.strip_prefix("done ") {
            last_done = n.parse().unwrap();
        }
    }
    // SAFETY: kill only sends a signal to the child we spawned and still own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(signal), "the child should end by {name}, got {status:?}");

    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(summary["end_reason"], name);
    let steps = calls(&summary, "step");
    assert!(steps >= last_done, "summary has {steps} steps, the child had finished {last_done}");
    assert_eq!(steps % 100, 0, "steps are recorded in whole frames");
    let trace = json(&dir.path().join("trace.json"));
    let traced = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["name"] == "step").count() as u64;
    assert_eq!(traced, steps);
    let native = std::fs::File::open(dir.path().join("profile.stgp")).unwrap();
    let mut agg = stageprof_analysis::Aggregator::default();
    let read = stageprof_model::ingest::read_native(std::io::BufReader::new(native), &mut agg).unwrap();
    assert_eq!(read.run.end_reason, name);
    assert!(read.run.warnings.is_empty(), "{:?}", read.run.warnings);
}

const DISK_STAGES: u64 = 200_000;

#[test]
#[ignore = "the pipeline run by a_disk_filling_mid_run_loses_no_stage"]
fn disk_full_child() {
    if !is_child("disk_full_child") {
        return;
    }
    // Files may grow to 256 KiB: the native file hits that mid-run (its
    // records need about 6 MiB); the summary is far smaller.
    // SAFETY: plain libc calls with valid arguments; SIG_IGN for SIGXFSZ
    // turns the over-limit write into an EFBIG error instead of a kill.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit { rlim_cur: 256 << 10, rlim_max: 256 << 10 };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let session = stageprof::init();
    for i in 0..DISK_STAGES {
        let _s = stageprof::scope!("work");
        if i % 10_000 == 0 {
            // Let the collector write as the run goes, as in a real pipeline.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let report = session.finish();
    println!("errors: {:?}", report.errors);
}

#[test]
fn a_disk_filling_mid_run_loses_no_stage() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_child("disk_full_child", dir.path(), &[("STAGEPROF_SAMPLE_EVERY", "1")]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let native = dir.path().join("profile.stgp");
    assert!(stderr.contains(&format!("cannot write {}", native.display())), "{stderr}");
    assert!(std::fs::metadata(&native).unwrap().len() > 100_000, "the file should have been written in part");
    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(calls(&summary, "work") + summary["dropped_events"].as_u64().unwrap(), DISK_STAGES);
    assert_eq!(summary["dropped_events"], 0);
    let warnings = summary["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("profile.stgp")), "{warnings:?}");
}

/// A pipeline that ends in a way of `STAGEPROF_END`'s choosing.
#[test]
#[ignore = "the pipeline run by the tests of process ends below"]
fn ending_child() {
    if !is_child("ending_child") {
        return;
    }
    let _session = stageprof::init();
    for _ in 0..10 {
        let _s = stageprof::scope!("step");
    }
    let _open = stageprof::scope!("open at the end");
    match std::env::var("STAGEPROF_END").unwrap().as_str() {
        "exit" => std::process::exit(3),
        "panic" => panic!("the pipeline failed"),
        _ => {}
    }
}

fn run_ending(end: &str, extra_env: &[(&str, &str)]) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("STAGEPROF_END", end)];
    env.extend_from_slice(extra_env);
    let out = spawn_child("ending_child", dir.path(), &env).wait_with_output().unwrap();
    (dir, out)
}

#[test]
fn process_exit_still_writes_outputs() {
    let (dir, out) = run_ending("exit", &[]);
    assert_eq!(out.status.code(), Some(3));
    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(summary["end_reason"], "exit");
    assert_eq!(calls(&summary, "step"), 10);
    assert_eq!(calls(&summary, "open at the end"), 1);
    json(&dir.path().join("trace.json"));
}

#[test]
fn a_panic_through_main_still_writes_outputs() {
    let (dir, out) = run_ending("panic", &[]);
    assert!(!out.status.success());
    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(summary["end_reason"], "panic");
    assert_eq!(calls(&summary, "step"), 10);
    let open = summary["stages"].as_array().unwrap().iter().find(|s| s["name"] == "open at the end").unwrap();
    assert_eq!(open["unwound"], 1);
}

#[test]
fn a_bad_setting_leaves_profiling_off_and_the_pipeline_running() {
    let (dir, out) = run_ending("normal", &[("STAGEPROF_SAMPLE_EVERY", "often")]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("STAGEPROF_SAMPLE_EVERY = \"often\": expected a whole number of frames")
            && stderr.contains("profiling is off"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is written when profiling is off");
}

#[test]
fn stageprof_toml_in_the_working_directory_is_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stageprof.toml"), "output_dir = \"custom-out\"\nformats = [\"summary\"]\n")
        .unwrap();
    let out = child_command("ending_child", &[("STAGEPROF_END", "normal")]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json(&dir.path().join("custom-out/summary.json"));
    assert_eq!(calls(&summary, "step"), 10);
    assert!(!dir.path().join("custom-out/trace.json").exists());
    assert!(!dir.path().join("stageprof-out").exists());
}

#[test]
fn the_os_clock_fallback_measures_the_same_stages() {
    let (dir, out) = run_ending("normal", &[("STAGEPROF_CLOCK", "instant")]);
    assert!(out.status.success());
    let file = std::fs::File::open(dir.path().join("profile.stgp")).unwrap();
    let mut reader = stageprof_model::native::NativeReader::new(std::io::BufReader::new(file)).unwrap();
    let Some(stageprof_model::native::Chunk::Meta(meta)) = reader.next_chunk().unwrap() else {
        panic!("no meta first")
    };
    assert!(meta.contains(&("clock".into(), "instant".into())), "{meta:?}");
    assert!(meta.contains(&("ticks_per_second".into(), "1000000000".into())));
    let summary = json(&dir.path().join("summary.json"));
    assert_eq!(calls(&summary, "step"), 10);
}
