//! Live monitoring on a running profiler: a slow frame and memory pressure
//! reach the pipeline's callback while it runs, and the rolling windows hold
//! the last frames' stage times.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stageprof::{Alert, Config, Format, Profiler};

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn alerts_reach_the_callback_and_windows_roll() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().to_path_buf(),
        formats: vec![Format::Native],
        monitor_window: 20,
        // Any process is above 1 MiB resident: the first RSS sample raises it.
        alert_host_mem_mb: Some(1),
        ..Config::default()
    });
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let seen = alerts.clone();
    p.on_alert(move |a| seen.lock().unwrap().push(a.clone()));
    for f in 0..50 {
        let _f = p.frame();
        let _s = p.stage("work");
        // Frame 30 takes 12 ms instead of 2.
        spin(Duration::from_millis(if f == 30 { 12 } else { 2 }));
    }
    let rolling = p.rolling_stats();
    p.finish();

    let alerts = alerts.lock().unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::SlowFrame { index: 30, duration_ns, .. } if *duration_ns >= 12_000_000)),
        "{alerts:?}"
    );
    assert!(
        alerts.iter().any(
            |a| matches!(a, Alert::MemoryPressure { track, threshold: 1_048_576, .. } if track == "process RSS bytes")
        ),
        "{alerts:?}"
    );
    // The window holds the last 20 frames' `work` (the slow one among them, or not yet published).
    let work = rolling.iter().find(|r| r.path == ["work"]).expect("work is monitored");
    assert!(work.frames <= 20 && work.frames >= 10, "{work:?}");
    assert!(work.mean_ns >= 2_000_000, "{work:?}");
}

#[test]
fn memory_alerts_without_the_monitor_are_a_config_error() {
    let err = Config { alert_host_mem_mb: Some(100), ..Config::default() }.validate("test").unwrap_err();
    assert_eq!(err.to_string(), "stageprof: invalid configuration in test: monitor_window = \"0\": memory alerts need the live monitor: set monitor_window");
}
