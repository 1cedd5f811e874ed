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

/// Counts what reaches it, and how often it is ticked.
#[derive(Default)]
struct Counts {
    spans: Vec<(String, u32)>,
    frames: u64,
    counters: u64,
    ticks: u64,
}

struct Watcher(Arc<Mutex<Counts>>);

impl stageprof_model::ProfileSink for Watcher {
    fn span(&mut self, span: &stageprof_model::Span, catalog: &stageprof_model::Catalog) {
        let mut c = self.0.lock().unwrap();
        match span.kind {
            stageprof_model::SpanKind::Frame => c.frames += 1,
            stageprof_model::SpanKind::Stage => c.spans.push((catalog.name(span.name).to_owned(), span.depth)),
        }
    }
    fn counter(&mut self, sample: &stageprof_model::CounterSample, catalog: &stageprof_model::Catalog) {
        // The recorder's own RSS samples come too; the pipeline's counter is `queue`.
        self.0.lock().unwrap().counters += u64::from(catalog.name(sample.name) == "queue");
    }
}

impl stageprof::LiveSink for Watcher {
    fn tick(&mut self, _: &stageprof_model::Catalog) {
        self.0.lock().unwrap().ticks += 1;
    }
}

#[test]
fn a_sink_the_pipeline_brings_sees_every_span_as_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let counts: Arc<Mutex<Counts>> = Arc::default();
    let config = Config { output_dir: dir.path().to_path_buf(), formats: vec![Format::Native], ..Config::default() };
    let p = Profiler::start_with_sinks(config, vec![Box::new(Watcher(counts.clone()))]);
    for _ in 0..10 {
        let _f = p.frame();
        let _outer = p.stage("decode");
        for _ in 0..3 {
            let _inner = p.stage("convert");
        }
        p.counter("queue", 1.0);
    }
    // The collector reads every 20 ms: the sink sees the spans while the pipeline runs.
    std::thread::sleep(Duration::from_millis(100));
    let seen_while_running = counts.lock().unwrap().spans.len();
    p.finish();
    let c = counts.lock().unwrap();
    assert_eq!(seen_while_running, 40, "every span reached the sink before finish");
    assert_eq!(c.spans.iter().filter(|(n, d)| n == "decode" && *d == 0).count(), 10);
    assert_eq!(c.spans.iter().filter(|(n, d)| n == "convert" && *d == 1).count(), 30);
    assert_eq!((c.frames, c.counters), (10, 10));
    assert!(c.ticks >= 2, "ticked at every read: {}", c.ticks);
}
