//! SIGINT in the middle of a run: the outputs are valid and hold every
//! stage that ended before the signal.
//!
//! The test re-runs its own binary as the pipeline (the ignored test below,
//! selected by an environment variable), interrupts it, and reads what it wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
#[ignore = "run as a child process by sigint_mid_run_leaves_complete_outputs"]
fn child_pipeline() {
    if std::env::var_os("STAGEPROF_SIGNAL_CHILD").is_none() {
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
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_pipeline", "--ignored", "--nocapture", "--test-threads=1"])
        .env("STAGEPROF_SIGNAL_CHILD", "1")
        .env("STAGEPROF_OUT", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_done = 0u64;
    while last_done < 5_000 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(n) = line.strip_prefix("done ") {
            last_done = n.parse().unwrap();
        }
    }
    // SAFETY: kill only sends a signal to the child we spawned and still own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "the child should end by SIGINT, got {status:?}");

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["end_reason"], "SIGINT");
    let step = summary["stages"].as_array().unwrap().iter().find(|s| s["name"] == "step").unwrap();
    let calls = step["calls"].as_u64().unwrap();
    assert!(calls >= last_done, "summary has {calls} steps, the child had finished {last_done}");
    assert_eq!(calls % 100, 0, "steps are recorded in whole frames");
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("trace.json")).unwrap()).unwrap();
    let traced = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["name"] == "step").count() as u64;
    assert_eq!(traced, calls);
    let native = std::fs::File::open(dir.path().join("profile.stgp")).unwrap();
    let mut agg = stageprof_analysis::Aggregator::default();
    let read = stageprof_analysis::read_native(std::io::BufReader::new(native), &mut agg).unwrap();
    assert_eq!(read.run.end_reason, "SIGINT");
    assert!(read.run.warnings.is_empty(), "{:?}", read.run.warnings);
}
