//! Live monitoring: rolling per-stage statistics over the last frames,
//! frame-time anomalies, and memory-pressure alerts, from spans and counter
//! samples as a running profile delivers them.
//!
//! A stage's figure per frame is the time of its calls that closed since the
//! previous frame closed (all threads), so work handed to a pool counts in
//! the frame it ran in. A frame is anomalous when it exceeds the
//! exponentially weighted mean of the frames before it by `sigmas` times
//! their weighted deviation and by at least [`MIN_ANOMALY_PCT`]; the weights
//! have a span of the window. A memory alert fires when a memory track
//! crosses its threshold upwards, and re-arms once it falls below 90% of it.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

use stageprof_model::{Catalog, CounterSample, PathId, ProfileSink, Span, SpanKind};

/// Frames seen before anomalies are judged.
const WARMUP_FRAMES: u64 = 10;
/// Smallest excess over the usual frame time that is called an anomaly.
pub const MIN_ANOMALY_PCT: f64 = 20.0;

/// What the monitor watches for.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// Frames in each stage's rolling window.
    pub window: usize,
    /// Deviations above the usual frame time that make a frame anomalous.
    pub sigmas: f64,
    /// Alert when the process's resident memory exceeds this many bytes.
    pub host_mem_bytes: Option<u64>,
    /// Alert when the GPU's used memory exceeds this many bytes.
    pub gpu_mem_bytes: Option<u64>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { window: 100, sigmas: 4.0, host_mem_bytes: None, gpu_mem_bytes: None }
    }
}

/// Something a person watching the pipeline should know now.
#[derive(Clone, Debug, PartialEq)]
pub enum Alert {
    /// Frame `index` (0-based) took far longer than the frames before it.
    SlowFrame {
        /// The frame's number.
        index: u64,
        /// Its wall time.
        duration_ns: u64,
        /// The median of recent frames.
        usual_ns: u64,
        /// Their robust deviation.
        deviation_ns: u64,
    },
    /// A memory track (`process RSS bytes`, `gpu.mem_used_bytes`) went above its threshold.
    MemoryPressure {
        /// The memory measured (a counter's name).
        track: String,
        /// Its level.
        bytes: u64,
        /// The level alerted at.
        threshold: u64,
    },
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        match self {
            Alert::SlowFrame { index, duration_ns, usual_ns, deviation_ns } => write!(
                f,
                "frame {index} took {:.2} ms, {:.1}x the usual {:.2} ms (deviation {:.2} ms)",
                ms(*duration_ns),
                *duration_ns as f64 / (*usual_ns).max(1) as f64,
                ms(*usual_ns),
                ms(*deviation_ns)
            ),
            Alert::MemoryPressure { track, bytes, threshold } => write!(
                f,
                "{track} at {:.1} MiB, above the {:.1} MiB threshold",
                *bytes as f64 / 1048576.0,
                *threshold as f64 / 1048576.0
            ),
        }
    }
}

/// A stage's rolling figures over the last frames.
#[derive(Clone, Debug, PartialEq)]
pub struct RollingStage {
    /// Names from the outermost stage down.
    pub path: Vec<String>,
    /// Frames in the window (at most the configured window).
    pub frames: usize,
    /// Mean per call in the window.
    pub mean_ns: u64,
    /// 95th percentile per call in the window.
    pub p95_ns: u64,
}

/// Counter tracks watched for memory pressure.
const HOST_TRACK: &str = "process RSS bytes";
const GPU_TRACKS: [&str; 2] = ["gpu.mem_used_bytes", "gpu.device_used_bytes"];

/// Watches a live profile's windows for slow frames and memory pressure.
pub struct Monitor {
    config: MonitorConfig,
    /// Per stage: time of its calls since the last frame closed, and its window.
    pending: HashMap<PathId, u64>,
    windows: HashMap<PathId, VecDeque<u64>>,
    frames: u64,
    ewma_mean: f64,
    ewma_var: f64,
    /// Memory tracks currently above their threshold.
    above: HashMap<String, bool>,
    alerts: Vec<Alert>,
}

impl Monitor {
    /// A monitor with these thresholds.
    pub fn new(config: MonitorConfig) -> Monitor {
        Monitor {
            config,
            pending: HashMap::new(),
            windows: HashMap::new(),
            frames: 0,
            ewma_mean: 0.0,
            ewma_var: 0.0,
            above: HashMap::new(),
            alerts: Vec::new(),
        }
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// Every stage's rolling figures, longest mean first.
    pub fn rolling(&self, catalog: &Catalog) -> Vec<RollingStage> {
        let mut out: Vec<RollingStage> = self
            .windows
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(&path, w)| {
                let mut sorted: Vec<u64> = w.iter().copied().collect();
                sorted.sort_unstable();
                let rank = ((0.95 * sorted.len() as f64).ceil() as usize).max(1);
                RollingStage {
                    path: catalog.path_names(path).into_iter().map(str::to_owned).collect(),
                    frames: w.len(),
                    mean_ns: (sorted.iter().map(|&v| u128::from(v)).sum::<u128>() / sorted.len() as u128) as u64,
                    p95_ns: sorted[rank - 1],
                }
            })
            .collect();
        out.sort_by(|a, b| b.mean_ns.cmp(&a.mean_ns).then_with(|| a.path.cmp(&b.path)));
        out
    }

    fn frame_closed(&mut self, duration_ns: u64) {
        let window = self.config.window.max(1);
        for (path, ns) in self.pending.drain() {
            let w = self.windows.entry(path).or_default();
            if w.len() == window {
                w.pop_front();
            }
            w.push_back(ns);
        }
        let d = duration_ns as f64;
        if self.frames >= WARMUP_FRAMES {
            let deviation = self.ewma_var.sqrt();
            let excess = d - self.ewma_mean;
            if excess > self.config.sigmas * deviation && excess > self.ewma_mean * MIN_ANOMALY_PCT / 100.0 {
                self.alerts.push(Alert::SlowFrame {
                    index: self.frames,
                    duration_ns,
                    usual_ns: self.ewma_mean.round() as u64,
                    deviation_ns: deviation.round() as u64,
                });
            }
        }
        // The weighted mean and variance (West's incremental form).
        if self.frames == 0 {
            self.ewma_mean = d;
        } else {
            let alpha = 2.0 / (window as f64 + 1.0);
            let diff = d - self.ewma_mean;
            self.ewma_mean += alpha * diff;
            self.ewma_var = (1.0 - alpha) * (self.ewma_var + alpha * diff * diff);
        }
        self.frames += 1;
    }

    fn memory(&mut self, track: &str, bytes: f64, threshold: u64) {
        let was_above = self.above.get(track).copied().unwrap_or(false);
        if !was_above && bytes > threshold as f64 {
            self.alerts.push(Alert::MemoryPressure { track: track.into(), bytes: bytes as u64, threshold });
            self.above.insert(track.into(), true);
        } else if was_above && bytes < 0.9 * threshold as f64 {
            self.above.insert(track.into(), false);
        }
    }
}

impl ProfileSink for Monitor {
    fn span(&mut self, span: &Span, _: &Catalog) {
        match (span.kind, span.path) {
            (SpanKind::Frame, _) => self.frame_closed(span.duration_ns()),
            (SpanKind::Stage, Some(path)) => {
                let t = self.pending.entry(path).or_insert(0);
                *t = t.saturating_add(span.duration_ns());
            }
            _ => {}
        }
    }

    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        let track = catalog.name(sample.name);
        let threshold = if track == HOST_TRACK {
            self.config.host_mem_bytes
        } else if GPU_TRACKS.contains(&track) {
            self.config.gpu_mem_bytes
        } else {
            None
        };
        if let Some(t) = threshold {
            self.memory(track, sample.value, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_model::{SpanFlags, StageMetrics};

    fn span(kind: SpanKind, path: Option<PathId>, ns: u64) -> Span {
        Span {
            thread: 0,
            kind,
            name: 0,
            path,
            depth: 0,
            start_ns: 0,
            end_ns: ns,
            self_ns: ns,
            frame: None,
            metrics: StageMetrics::default(),
            flags: SpanFlags::default(),
        }
    }

    fn catalog() -> (Catalog, PathId, PathId) {
        let mut c = Catalog::default();
        c.set_name(0, "decode");
        c.set_name(1, "infer");
        c.set_name(2, "process RSS bytes");
        c.set_name(3, "gpu.mem_used_bytes");
        let (a, b) = (c.intern_path(None, 0), c.intern_path(None, 1));
        (c, a, b)
    }

    #[test]
    fn rolling_windows_hold_the_last_frames_per_stage() {
        let (c, decode, infer) = catalog();
        let mut m = Monitor::new(MonitorConfig { window: 4, ..MonitorConfig::default() });
        for f in 1..=10u64 {
            // decode: one call of f ms; infer: two calls of 1 ms (summed per frame).
            m.span(&span(SpanKind::Stage, Some(decode), f * 1_000_000), &c);
            m.span(&span(SpanKind::Stage, Some(infer), 1_000_000), &c);
            m.span(&span(SpanKind::Stage, Some(infer), 1_000_000), &c);
            m.span(&span(SpanKind::Frame, None, 10_000_000), &c);
        }
        let r = m.rolling(&c);
        assert_eq!(r[0].path, ["decode"]);
        assert_eq!((r[0].frames, r[0].mean_ns, r[0].p95_ns), (4, 8_500_000, 10_000_000));
        assert_eq!((r[1].frames, r[1].mean_ns, r[1].p95_ns), (4, 2_000_000, 2_000_000));
        assert!(m.take_alerts().is_empty(), "steady frames raise nothing");
    }

    #[test]
    fn a_slow_frame_is_an_anomaly_and_jitter_is_not() {
        let (c, ..) = catalog();
        let mut m = Monitor::new(MonitorConfig { window: 20, ..MonitorConfig::default() });
        for i in 0..50u64 {
            // 10 ms ± 0.3 ms of jitter, then one frame of 25 ms.
            let ns = if i == 40 { 25_000_000 } else { 10_000_000 + (i * 7919 % 7) * 100_000 };
            m.span(&span(SpanKind::Frame, None, ns), &c);
        }
        let alerts = m.take_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let Alert::SlowFrame { index, duration_ns, usual_ns, .. } = alerts[0] else { panic!() };
        assert_eq!((index, duration_ns), (40, 25_000_000));
        assert!((10_000_000..10_700_000).contains(&usual_ns), "{usual_ns}");
        assert!(alerts[0].to_string().starts_with("frame 40 took 25.00 ms, 2."), "{}", alerts[0]);
    }

    #[test]
    fn gpu_memory_has_its_own_threshold() {
        let (c, ..) = catalog();
        let config =
            MonitorConfig { host_mem_bytes: Some(10), gpu_mem_bytes: Some(4 << 30), ..MonitorConfig::default() };
        let mut m = Monitor::new(config);
        for v in [3.0 * (1u64 << 30) as f64, 5.0 * (1u64 << 30) as f64] {
            m.counter(&CounterSample { name: 3, thread: 0, ts_ns: 0, value: v }, &c);
        }
        let alerts = m.take_alerts();
        assert_eq!(
            alerts,
            vec![Alert::MemoryPressure { track: "gpu.mem_used_bytes".into(), bytes: 5 << 30, threshold: 4 << 30 }]
        );
        assert_eq!(alerts[0].to_string(), "gpu.mem_used_bytes at 5120.0 MiB, above the 4096.0 MiB threshold");
    }

    #[test]
    fn memory_pressure_fires_once_per_crossing() {
        let (c, ..) = catalog();
        let mut m = Monitor::new(MonitorConfig { host_mem_bytes: Some(1000), ..MonitorConfig::default() });
        for v in [500.0, 1200.0, 1300.0, 950.0, 1100.0, 800.0, 1001.0] {
            m.counter(&CounterSample { name: 2, thread: 0, ts_ns: 0, value: v }, &c);
        }
        let alerts = m.take_alerts();
        // Above at 1200; 950 is not below 90%, so 1100 does not fire again; 800 re-arms; 1001 fires.
        assert_eq!(
            alerts,
            vec![
                Alert::MemoryPressure { track: "process RSS bytes".into(), bytes: 1200, threshold: 1000 },
                Alert::MemoryPressure { track: "process RSS bytes".into(), bytes: 1001, threshold: 1000 },
            ]
        );
    }
}
