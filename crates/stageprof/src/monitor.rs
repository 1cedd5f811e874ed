//! Live monitoring while the pipeline runs: the collector thread decodes
//! what the recording threads wrote (it reads their blocks every 20 ms
//! anyway), feeds [`stageprof_analysis::monitor::Monitor`], publishes the
//! rolling figures, and hands alerts to the pipeline's callback and to a
//! log line. Nothing is added to the hot path.

use std::sync::{Arc, Mutex, PoisonError};

use stageprof_analysis::monitor::{Alert, Monitor, MonitorConfig, RollingStage};
use stageprof_analysis::RecordDecoder;
use stageprof_model::wire::TickScale;
use stageprof_model::Catalog;

use crate::collector::report;
use crate::config::Config;

type Handler = Arc<dyn Fn(&Alert) + Send + Sync>;

/// What the pipeline's threads and the collector share of the monitor.
#[derive(Default)]
pub(crate) struct MonitorShared {
    handler: Mutex<Option<Handler>>,
    rolling: Mutex<Vec<RollingStage>>,
}

impl MonitorShared {
    pub fn set_handler(&self, f: Handler) {
        *self.handler.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
    }

    pub fn rolling(&self) -> Vec<RollingStage> {
        self.rolling.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The monitor's settings from the profiler's, when monitoring is on.
pub(crate) fn monitor_config(config: &Config) -> Option<MonitorConfig> {
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
    monitor: Monitor,
    shared: Arc<MonitorShared>,
}

impl LiveMonitor {
    pub fn new(config: MonitorConfig, scale: TickScale, shared: Arc<MonitorShared>) -> LiveMonitor {
        LiveMonitor { decoder: RecordDecoder::new(scale), monitor: Monitor::new(config), shared }
    }

    pub fn feed(&mut self, catalog: &mut Catalog, thread: u32, words: &[u64]) {
        // A malformed record is the recording's problem; the file keeps it and the report says so.
        let _ = self.decoder.feed(catalog, thread, words, &mut self.monitor);
    }

    /// Publishes the rolling figures and delivers the alerts raised since the last call.
    pub fn publish(&mut self, catalog: &Catalog) {
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
