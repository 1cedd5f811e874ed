//! `stageprof history`: runs recorded from real profiles, trends with a
//! change point where one was made, concurrent writers, and files that are
//! not a history left untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use stageprof::{Config, Format, Profiler};

mod common;
use common::{one_at_a_time, s, spin, stageprof};

/// A profile whose `work` stage takes `work_us` a call, 10 calls.
fn record(dir: &Path, work_us: u64) -> PathBuf {
    let p =
        Profiler::start(Config { output_dir: dir.to_path_buf(), formats: vec![Format::Native], ..Config::default() });
    for _ in 0..10 {
        let _s = p.stage("work");
        spin(Duration::from_micros(work_us));
    }
    p.finish();
    dir.join("profile.stgp")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn trends_show_the_step_a_change_made() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let (fast, slow) = (record(&dir.path().join("fast"), 300), record(&dir.path().join("slow"), 600));
    // Six runs at 300 µs a call, then six at 600 µs: runs 7 to 12 doubled.
    let runs: Vec<&str> = [s(&fast); 6].into_iter().chain([s(&slow); 6]).collect();
    let text = ok(stageprof(&[&["history", "--db", s(&db), "record", "--label", "ci"][..], &runs[..]].concat()));
    // Run from the repository's working tree, so the commit is stored too.
    assert!(
        text.starts_with("recorded run 1 (1 stages, commit ") && text.contains("recorded run 12 (1 stages"),
        "{text}"
    );

    let text = ok(stageprof(&["history", "--db", s(&db)]));
    assert!(text.contains("newest run 12") && text.contains("labels ci"), "{text}");
    let row = text.lines().find(|l| l.contains("work")).unwrap();
    assert!(row.contains("▁▁▁▁▁▁██████"), "{row}");
    // The step is found at run 7; its size is the machine's: the spins double, but a
    // busy machine stretches the short ones more (CI once saw +48% for +100%).
    let step: f64 =
        row.split("run 7: +").nth(1).and_then(|r| r.split('%').next()).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    assert!(step >= 25.0, "{row}");

    let text = ok(stageprof(&["history", "--db", s(&db), "show", "3"]));
    assert!(text.starts_with("run 3") && text.contains("work"), "{text}");
    let out = stageprof(&["history", "--db", s(&db), "show", "99"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no run 99 in")
            && String::from_utf8_lossy(&out.stderr).contains("numbered 1 to 12")
    );
}

#[test]
fn concurrent_writers_each_get_their_run() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let profile = record(&dir.path().join("p"), 50);
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_stageprof"))
                .args(["history", "--db", s(&db), "record", s(&profile)])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids: Vec<u32> = children
        .into_iter()
        .map(|c| {
            let text = ok(c.wait_with_output().unwrap());
            text.split_whitespace().nth(2).unwrap().parse().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=8).collect::<Vec<u32>>(), "eight writers at once, each its own run");
}

#[test]
fn files_that_are_not_a_history_are_refused_and_left_alone() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let profile = record(&dir.path().join("p"), 50);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, but a user's notes\n".repeat(200)).unwrap();
    let before = std::fs::read(&junk).unwrap();
    let out = stageprof(&["history", "--db", s(&junk), "record", s(&profile)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.db is not a stageprof history") && stderr.contains("left as it is"), "{stderr}");
    assert_eq!(std::fs::read(&junk).unwrap(), before);

    let foreign = dir.path().join("other.sqlite");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER); INSERT INTO invoices VALUES (1);").unwrap();
    drop(conn);
    let before = std::fs::read(&foreign).unwrap();
    let out = stageprof(&["history", "--db", s(&foreign), "record", s(&profile)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another program's SQLite database"));
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

#[test]
fn a_locked_database_is_waited_for_then_named() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let profile = record(&dir.path().join("p"), 50);
    ok(stageprof(&["history", "--db", s(&db), "record", s(&profile)]));
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE; INSERT INTO labels VALUES (1, 'held');").unwrap();
    let out = stageprof(&["history", "--db", s(&db), "record", s(&profile)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is locked by another stageprof (waited 5 s)"), "{stderr}");
    holder.execute_batch("COMMIT").unwrap();
    let text = ok(stageprof(&["history", "--db", s(&db), "record", s(&profile)]));
    assert!(text.starts_with("recorded run 2"), "nothing was lost or half-written: {text}");
}

/// A run's output directory records as that run (its native profile, not the JSON beside it).
#[test]
fn a_run_directory_records_as_its_profile() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let profile = record(&dir.path().join("run"), 50);
    std::fs::write(dir.path().join("run/summary.json"), "{}").unwrap();
    let text = ok(stageprof(&["history", "--db", s(&db), "record", s(profile.parent().unwrap())]));
    assert!(text.starts_with("recorded run 1 (1 stages") && !text.contains("recorded run 2"), "{text}");
    let shown = ok(stageprof(&["history", "--db", s(&db), "show", "1"]));
    assert!(shown.lines().any(|l| l.contains("work") && l.contains(" 10 ")), "{shown}");
}
