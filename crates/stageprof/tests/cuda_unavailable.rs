//! The `cuda` feature on a machine without a usable GPU (CI has none):
//! the session says why in one line (on stderr) and the CPU side records
//! as before. On a machine with a GPU the GPU side runs instead, and the
//! CPU figures must still be right.
#![cfg(feature = "cuda")]

use stageprof::{Config, Format, GpuTrace, Profiler};

#[test]
fn cpu_profiling_goes_on_whatever_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        output_dir: dir.path().into(),
        formats: vec![Format::Summary, Format::Native],
        gpu: GpuTrace::Kernels,
        ..Config::default()
    };
    let p = Profiler::start(config);
    for _ in 0..3 {
        let _f = p.frame();
        let _s = p.stage("load");
        let _t = p.stage("decode");
    }
    let report = p.finish();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let s = report.summary.unwrap();
    let names: Vec<(&str, u64)> = s.stages.iter().map(|st| (st.name.as_str(), st.calls)).collect();
    assert_eq!(names, [("load", 3), ("decode", 3)]);
    assert_eq!(s.frames.count, 3);
    // No kernels were launched: no stage has GPU work, whether or not a GPU is there.
    assert!(s.stages.iter().all(|st| st.gpu.is_none_or(|g| g.kernels == 0)));
    assert!(dir.path().join("profile.stgp").exists());
}
