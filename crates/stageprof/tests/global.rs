//! The global facade: `init`, `scope!`, `#[profile]`, `counter!`, `frame()`.
//! One test function, because the global session is process-wide.

use stageprof::{Config, Format};

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

#[stageprof::profile]
fn undistort() {
    std::hint::black_box(vec![0u8; 256]);
}

#[stageprof::profile("custom name")]
fn named() {}

#[test]
fn global_session_macros_and_attribute() {
    // Off: nothing is recorded and nothing is written.
    let off_dir = tempfile::tempdir().unwrap();
    let off = stageprof::init_with(Config { enabled: false, output_dir: off_dir.path().into(), ..Config::default() });
    assert!(!stageprof::scope!("x").is_recording());
    assert!(off.finish().summary.is_none());
    assert_eq!(std::fs::read_dir(off_dir.path()).unwrap().count(), 0);

    let dir = tempfile::tempdir().unwrap();
    let session = stageprof::init_with(Config {
        output_dir: dir.path().into(),
        formats: vec![Format::Summary, Format::Native],
        sample_fraction: Some(0.5),
        ..Config::default()
    });
    for i in 0..8 {
        let _f = stageprof::frame();
        let _s = stageprof::scope!("load");
        undistort();
        named();
        stageprof::counter!("queue", i);
        let _d = stageprof::stage(&format!("dynamic {}", (i / 2) % 2));
    }
    stageprof::set_enabled(false);
    assert!(!stageprof::is_recording());
    drop(stageprof::scope!("while off"));
    stageprof::set_enabled(true);
    let report = session.finish();
    assert!(!stageprof::is_recording());
    let s = report.summary.unwrap();
    let calls = |p: &str| s.stages.iter().find(|st| st.path.join("/") == p).map(|st| st.calls);
    assert_eq!((s.frames.count, s.frames.sampled), (8, 4));
    assert_eq!(calls("load"), Some(4));
    assert_eq!(calls("load/global::undistort"), Some(4));
    assert_eq!(calls("load/custom name"), Some(4));
    assert_eq!(calls("load/dynamic 0").unwrap() + calls("load/dynamic 1").unwrap(), 4);
    assert_eq!(calls("while off"), None);
    let undistort = s.stages.iter().find(|st| st.name == "global::undistort").unwrap();
    assert_eq!((undistort.allocs, undistort.alloc_bytes), (Some(4), Some(1024)));
    assert_eq!(s.counters.iter().find(|c| c.name == "queue").map(|c| c.samples), Some(4));
    assert!(dir.path().join("summary.json").exists() && dir.path().join("profile.stgp").exists());
    assert!(!dir.path().join("trace.json").exists());

    // After finish, stages are free again and a new session can start.
    assert!(!stageprof::scope!("load").is_recording());
}
