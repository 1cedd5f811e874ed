//! Live monitoring while the pipeline runs: the collector thread decodes
//! what the recording threads wrote (it reads their blocks every 20 ms
//! anyway), feeds [`stageprof_analysis::monitor::Monitor`] and the
//! Prometheus exporter, publishes the rolling figures, and hands alerts to
//! the pipeline's callback and to a log line. Nothing is added to the hot path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use stageprof_analysis::monitor::{Alert, Monitor, MonitorConfig, RollingStage};
use stageprof_model::ingest::RecordDecoder;
use stageprof_model::wire::TickScale;
use stageprof_model::Catalog;
#[cfg(not(feature = "prometheus"))]
use stageprof_model::{CounterSample, ProfileSink, Span};

use crate::config::Config;
use crate::notice::report;
#[cfg(feature = "prometheus")]
use crate::prometheus::Exporter;

/// Without the `prometheus` feature there is nothing to export to.
#[cfg(not(feature = "prometheus"))]
pub(crate) enum Exporter {}

#[cfg(not(feature = "prometheus"))]
impl ProfileSink for Exporter {
    fn span(&mut self, _: &Span, _: &Catalog) {
        match *self {}
    }
    fn counter(&mut self, _: &CounterSample, _: &Catalog) {
        match *self {}
    }
}

type Handler = Arc<dyn Fn(&Alert) + Send + Sync>;

/// What the pipeline's threads and the collector share of the monitor.
#[derive(Default)]
pub(crate) struct MonitorShared {
    handler: Mutex<Option<Handler>>,
    rolling: Mutex<Vec<RollingStage>>,
    /// Where the Prometheus endpoint listens.
    pub metrics_addr: OnceLock<SocketAddr>,
}

impl MonitorShared {
    pub fn set_handler(&self, f: Handler) {
        *self.handler.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
    }

    pub fn rolling(&self) -> Vec<RollingStage> {
        self.rolling.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(feature = "prometheus")]
fn start_exporter(config: &Config, shared: &MonitorShared) -> Option<Exporter> {
    let port = config.prometheus_port?;
    match Exporter::start(&config.prometheus_bind, port) {
        Ok(e) => {
            let _ = shared.metrics_addr.set(e.addr());
            Some(e)
        }
        Err(e) => {
            report(&format!("{e}; the rest goes on"));
            None
        }
    }
}

#[cfg(not(feature = "prometheus"))]
fn start_exporter(_: &Config, _: &MonitorShared) -> Option<Exporter> {
    None
}

/// The monitor's settings from the profiler's, when monitoring is on.
fn monitor_config(config: &Config) -> Option<MonitorConfig> {
    (config.monitor_window > 0).then(|| MonitorConfig {
        window: config.monitor_window as usize,
        sigmas: config.alert_sigmas,
        host_mem_bytes: config.alert_host_mem_mb.map(|mb| mb << 20),
        gpu_mem_bytes: config.alert_gpu_mem_mb.map(|mb| mb << 20),
    })
}

/// The collector's side: its own decoder, so monitoring never disturbs what is recorded.
pub(crate) struct LiveMonitor {
    decoder: RecordDecoder,
    sinks: (Option<Monitor>, Option<Exporter>),
    shared: Arc<MonitorShared>,
}

impl LiveMonitor {
    /// Live decoding for what `config` asks for (the monitor, the Prometheus endpoint), if anything.
    pub fn new(config: &Config, scale: TickScale, shared: Arc<MonitorShared>) -> Option<LiveMonitor> {
        let monitor = monitor_config(config).map(Monitor::new);
        let exporter = start_exporter(config, &shared);
        (monitor.is_some() || exporter.is_some()).then(|| LiveMonitor {
            decoder: RecordDecoder::new(scale),
            sinks: (monitor, exporter),
            shared,
        })
    }

    pub fn feed(&mut self, catalog: &mut Catalog, thread: u32, words: &[u64]) {
        // A malformed record is the recording's problem; the file keeps it and the report says so.
        let _ = self.decoder.feed(catalog, thread, words, &mut self.sinks);
    }

    /// Publishes the rolling figures and delivers the alerts raised since the last call.
    pub fn publish(&mut self, catalog: &Catalog) {
        let Some(monitor) = self.sinks.0.as_mut() else { return };
        *self.shared.rolling.lock().unwrap_or_else(PoisonError::into_inner) = monitor.rolling(catalog);
        let alerts = monitor.take_alerts();
        if alerts.is_empty() {
            return;
        }
        let handler = self.shared.handler.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for alert in &alerts {
            report(&format!("alert: {alert}"));
            if let Some(h) = &handler {
                h(alert);
            }
        }
    }
}
