//! Live monitoring while the pipeline runs, as live sinks ([`crate::live`]):
//! [`stageprof_analysis::monitor::Monitor`] publishes the rolling figures
//! and hands alerts to the pipeline's callback and to a log line; the
//! Prometheus exporter serves the metrics. Nothing is added to the hot path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use stageprof_analysis::monitor::{Alert, Monitor, MonitorConfig, RollingStage};
use stageprof_model::{Catalog, CounterSample, ProfileSink, Span};

use crate::config::Config;
use crate::live::LiveSink;
use crate::notice::report;
#[cfg(feature = "prometheus")]
use crate::prometheus::Exporter;

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
    pub(crate) fn set_handler(&self, f: Handler) {
        *self.handler.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
    }

    pub(crate) fn rolling(&self) -> Vec<RollingStage> {
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

/// Without the `prometheus` feature there is nothing to export to.
#[cfg(not(feature = "prometheus"))]
fn start_exporter(_: &Config, _: &MonitorShared) -> Option<crate::live::NoSink> {
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

/// The sinks `config` asks for: the monitor and the Prometheus endpoint.
pub(crate) fn sinks(config: &Config, shared: &Arc<MonitorShared>) -> Vec<Box<dyn LiveSink>> {
    let mut sinks: Vec<Box<dyn LiveSink>> = Vec::new();
    if let Some(c) = monitor_config(config) {
        sinks.push(Box::new(MonitorSink { monitor: Monitor::new(c), shared: shared.clone() }));
    }
    if let Some(exporter) = start_exporter(config, shared) {
        sinks.push(Box::new(exporter));
    }
    sinks
}

/// The monitor as a live sink: it publishes the rolling figures and
/// delivers alerts at every tick.
struct MonitorSink {
    monitor: Monitor,
    shared: Arc<MonitorShared>,
}

impl ProfileSink for MonitorSink {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        self.monitor.span(span, catalog);
    }
    fn counter(&mut self, sample: &CounterSample, catalog: &Catalog) {
        self.monitor.counter(sample, catalog);
    }
}

impl LiveSink for MonitorSink {
    fn tick(&mut self, catalog: &Catalog) {
        *self.shared.rolling.lock().unwrap_or_else(PoisonError::into_inner) = self.monitor.rolling(catalog);
        let alerts = self.monitor.take_alerts();
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
