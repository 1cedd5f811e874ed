//! Stages of the thread that drives the pipeline see the heap of all
//! threads: memory their worker threads hold counts toward them. One test in
//! its own binary, so no other test's allocations share the process.

use std::sync::Barrier;

use stageprof::{Config, Format, Profiler};

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

#[test]
fn work_handed_to_other_threads_counts_toward_the_driving_stage() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        Profiler::start(Config { output_dir: dir.path().into(), formats: vec![Format::Summary], ..Config::default() });
    drop(p.stage("warm"));
    let barrier = Barrier::new(2);
    {
        let _s = p.stage("parallel");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    // Each worker holds 4 MiB; both hold theirs at the same moment.
                    let v = std::hint::black_box(vec![1u8; 4 << 20]);
                    barrier.wait();
                    drop(v);
                });
            }
        });
    }
    let s = p.finish().summary.unwrap();
    let st = s.stages.iter().find(|st| st.name == "parallel").unwrap();
    let (peak, net) = (st.process_mem_peak_bytes.unwrap() as i64, st.process_mem_net_bytes.unwrap());
    // Exact to the flush batch of each thread involved (3), plus the threads' own bookkeeping.
    let slack = 3 * stageprof::PROCESS_FLUSH_BYTES + (64 << 10);
    assert!((peak - (8 << 20)).abs() <= slack, "all-thread peak {peak}, expected 8 MiB");
    assert!(net.abs() <= slack, "all-thread net {net}");
    // Its own thread allocated next to nothing.
    assert!(st.host_mem_peak_bytes.unwrap() < 64 << 10, "own-thread peak {:?}", st.host_mem_peak_bytes);
    // Stages of other threads do not measure the process.
    assert_eq!(s.peak_stage_host_mem().map(|(i, _)| s.stages[i].name.as_str()), Some("parallel"));

    // Over time: the heap's highest level lies within the `parallel` call, 8 MiB above its start.
    let [host] = &s.memory[..] else { panic!("one memory timeline, the host's: {:?}", s.memory) };
    let peak = &host.peak;
    assert_eq!(peak.stage.map(|i| s.stages[i].name.as_str()), Some("parallel"));
    let at_start = host.points.iter().find(|&&(t, _)| t == peak.start_ns).expect("a level at the call's start").1;
    assert!((peak.bytes - at_start - (8 << 20)).abs() <= slack, "peak {} over start {at_start}", peak.bytes);
    assert!(peak.end_ns > peak.start_ns && host.points.iter().any(|&(t, _)| t == peak.end_ns));
}
