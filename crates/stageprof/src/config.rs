//! Configuration: `stageprof.toml`, then environment variables, then code.
//!
//! A bad value never takes the pipeline down: loading fails with an error
//! that names the key and the value, and `init()` reports it and leaves the
//! profiler off.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a session writes when it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The terminal table, printed to standard error.
    Table,
    /// `summary.json` (docs/summary-schema.md).
    Summary,
    /// `trace.json`, for Perfetto UI and chrome://tracing.
    Chrome,
    /// `profile.stgp`, the native file `stageprof report` reads (docs/format.md).
    Native,
    /// `report.html`, one self-contained page with charts (with the `html` feature).
    Html,
}

impl Format {
    /// What a session writes unless told otherwise: every format this build can write.
    #[cfg(feature = "html")]
    pub const DEFAULT: &[Format] = &[Format::Table, Format::Summary, Format::Chrome, Format::Native, Format::Html];
    /// What a session writes unless told otherwise.
    #[cfg(all(feature = "report", not(feature = "html")))]
    pub const DEFAULT: &[Format] = &[Format::Table, Format::Summary, Format::Chrome, Format::Native];
    /// What a session writes unless told otherwise.
    #[cfg(not(feature = "report"))]
    pub const DEFAULT: &[Format] = &[Format::Native];
}

/// What the `cuda` feature records of GPU work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuTrace {
    /// Nothing.
    Off,
    /// CUDA events around each stage: its GPU time.
    Events,
    /// Events, and every kernel, copy and memset through CUPTI.
    Kernels,
}

/// Profiler settings. Every field has a default; `stageprof.toml` may set any of them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Record at all. Off means one relaxed atomic load per stage.
    pub enabled: bool,
    /// Where outputs go.
    pub output_dir: PathBuf,
    /// What is written at finish.
    pub formats: Vec<Format>,
    /// Record the stages of every Nth frame (1 = all).
    pub sample_every: u32,
    /// Record this fraction of frames, evenly spread (instead of `sample_every`).
    pub sample_fraction: Option<f64>,
    /// Measure host memory per stage (needs [`crate::TrackingAllocator`]).
    pub memory: bool,
    /// Measure thread CPU time per stage: two system calls a stage (about 400 ns).
    pub cpu_time: bool,
    /// Most memory for recording buffers, in MiB, taken block by block only
    /// while the collector is behind. When full, records are dropped and counted.
    pub buffer_mb: u32,
    /// How many bottlenecks the report names.
    pub top: usize,
    /// Write outputs on SIGINT/SIGTERM before the process ends (global session only).
    pub signals: bool,
    /// Period of the process memory (RSS) counter track, in ms; 0 = off.
    pub rss_sample_ms: u32,
    /// GPU recording (with the `cuda` feature; ignored without it).
    pub gpu: GpuTrace,
    /// The CUDA device whose events, memory and counters are recorded.
    pub gpu_device: u32,
    /// GPU memory per stage, as allocated through `stageprof::cuda` (the `cuda` feature).
    pub gpu_memory: bool,
    /// GPU recording waits for `Profiler::start_gpu` (the `cuda` feature) instead of
    /// starting with the profiler (the Python package starts it once torch
    /// has initialized CUDA).
    pub gpu_on_demand: bool,
    /// With `gpu = "kernels"`: trace kernels, copies and memsets in 1 of
    /// every this many recorded frames (1: all; 0: as many as keep tracing's
    /// measured cost under 1.5% of the run's time). CUPTI's records cost time
    /// in every launch; the GPU work figures of stages are over their calls
    /// in the traced frames. CUDA events and GPU memory cover every frame.
    pub kernel_every: u32,
    /// Period of the GPU counter tracks (NVML's utilization, memory, power,
    /// clock, PCIe; the device's used memory), in ms; 0 = off.
    pub nvml_sample_ms: u32,
    /// Mirror stages as NVTX ranges (Nsight Systems shows them).
    pub nvtx: bool,
    /// Frames in the live monitor's rolling windows; 0 = no live monitoring.
    pub monitor_window: u32,
    /// A frame this many deviations above the usual (and 20% above it) raises a slow-frame alert.
    pub alert_sigmas: f64,
    /// Alert when the process's resident memory passes this many MiB (needs `rss_sample_ms`).
    pub alert_host_mem_mb: Option<u64>,
    /// Alert when the GPU's used memory passes this many MiB (the `cuda` feature's NVML track).
    pub alert_gpu_mem_mb: Option<u64>,
    /// Serve Prometheus metrics on this port (0: any free one; the `prometheus` feature).
    pub prometheus_port: Option<u16>,
    /// The address the Prometheus endpoint binds.
    pub prometheus_bind: String,
    /// Bound the native file's raw events to about this many MiB on disk
    /// (the README's "Bounded runs"); none: keep every event.
    pub max_disk_mb: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            output_dir: PathBuf::from("stageprof-out"),
            formats: Format::DEFAULT.to_vec(),
            sample_every: 1,
            sample_fraction: None,
            memory: true,
            cpu_time: false,
            buffer_mb: 256,
            top: 3,
            signals: true,
            rss_sample_ms: 10,
            gpu: GpuTrace::Kernels,
            gpu_device: 0,
            gpu_memory: true,
            gpu_on_demand: false,
            kernel_every: 0,
            nvml_sample_ms: 100,
            nvtx: true,
            monitor_window: 0,
            alert_sigmas: 4.0,
            alert_host_mem_mb: None,
            alert_gpu_mem_mb: None,
            prometheus_port: None,
            prometheus_bind: "127.0.0.1".into(),
            max_disk_mb: None,
        }
    }
}

/// A configuration that cannot be used: where it came from, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file or environment variable.
    pub source: String,
    /// The offending key, where one is known.
    pub key: Option<String>,
    /// The offending value, where one is known.
    pub value: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// TOML that does not make a configuration, the parser's words on one line.
    fn unparsed(source: &str, e: &toml::de::Error) -> ConfigError {
        ConfigError {
            source: source.to_owned(),
            key: None,
            value: None,
            reason: e.to_string().trim().replace('\n', " "),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stageprof: invalid configuration in {}", self.source)?;
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        if let Some(v) = &self.value {
            write!(f, " = {v:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The environment variables read, and what each sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("STAGEPROF", "0 or 1: profiling off or on"),
    ("STAGEPROF_CONFIG", "path of the config file (default ./stageprof.toml when it exists)"),
    ("STAGEPROF_OUT", "output directory"),
    ("STAGEPROF_SAMPLE_EVERY", "record every Nth frame"),
    ("STAGEPROF_CPU_TIME", "0 or 1: thread CPU time per stage"),
    ("STAGEPROF_GPU", "off, events or kernels: GPU recording (cuda feature)"),
    ("STAGEPROF_CUPTI", "path of the CUPTI library to trace kernels with (cuda feature)"),
];

impl Config {
    /// The config file (if any), overridden by environment variables, validated.
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(|k| std::env::var(k).ok())
    }

    /// [`Config::load`] with the environment given as a lookup function.
    pub fn load_from(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match env("STAGEPROF_CONFIG") {
            Some(path) => Config::from_file(Path::new(&path))?,
            None if Path::new("stageprof.toml").exists() => Config::from_file(Path::new("stageprof.toml"))?,
            None => Config::default(),
        };
        if let Some(v) = env("STAGEPROF") {
            config.enabled = parse_switch("STAGEPROF", &v)?;
        }
        if let Some(v) = env("STAGEPROF_OUT") {
            config.output_dir = PathBuf::from(v);
        }
        if let Some(v) = env("STAGEPROF_SAMPLE_EVERY") {
            config.sample_every = v.trim().parse().map_err(|_| ConfigError {
                source: "environment variable STAGEPROF_SAMPLE_EVERY".into(),
                key: None,
                value: Some(v.clone()),
                reason: "expected a whole number of frames, 1 or more".into(),
            })?;
        }
        if let Some(v) = env("STAGEPROF_CPU_TIME") {
            config.cpu_time = parse_switch("STAGEPROF_CPU_TIME", &v)?;
        }
        if let Some(v) = env("STAGEPROF_GPU") {
            config.gpu = match v.trim().to_ascii_lowercase().as_str() {
                "off" | "0" => GpuTrace::Off,
                "events" => GpuTrace::Events,
                "kernels" | "1" => GpuTrace::Kernels,
                _ => {
                    return Err(ConfigError {
                        source: "environment variable STAGEPROF_GPU".into(),
                        key: None,
                        value: Some(v.clone()),
                        reason: "expected off, events or kernels".into(),
                    })
                }
            };
        }
        config.validate("environment and config")?;
        Ok(config)
    }

    /// This configuration with the keys of `overrides` (named as in
    /// stageprof.toml) set over it, validated; `source` names them in errors
    /// (for the Python package: keyword arguments of `init`).
    pub fn with_overrides(&self, overrides: toml::Table, source: &str) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(self).map_err(|e| ConfigError {
            source: source.to_owned(),
            key: None,
            value: None,
            reason: format!("the configuration cannot be written as TOML: {e}"),
        })?;
        for (key, value) in overrides {
            if !table.contains_key(&key) && Config::OPTIONAL_KEYS.binary_search(&key.as_str()).is_err() {
                return Err(ConfigError {
                    source: source.to_owned(),
                    key: Some(key),
                    value: None,
                    reason: "no such setting".into(),
                });
            }
            table.insert(key, value);
        }
        let config: Config = table.try_into().map_err(|e| ConfigError::unparsed(source, &e))?;
        config.validate(source)?;
        Ok(config)
    }

    /// Settings that are absent unless set (TOML has no null), sorted.
    const OPTIONAL_KEYS: [&'static str; 5] =
        ["alert_gpu_mem_mb", "alert_host_mem_mb", "max_disk_mb", "prometheus_port", "sample_fraction"];

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let source = format!("config file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            key: None,
            value: None,
            reason: format!("cannot read it: {e}"),
        })?;
        Config::from_toml(&text, &source)
    }

    /// Parses TOML text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::unparsed(source, &e))?;
        config.validate(source)?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, reason: &str| {
            Err(ConfigError {
                source: source.to_owned(),
                key: Some(key.into()),
                value: Some(value),
                reason: reason.into(),
            })
        };
        if self.sample_every == 0 {
            return bad("sample_every", "0".into(), "must be 1 or more (1 records every frame)");
        }
        if let Some(f) = self.sample_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return bad("sample_fraction", f.to_string(), "must be above 0 and at most 1");
            }
            if self.sample_every != 1 {
                return bad("sample_fraction", f.to_string(), "set either sample_every or sample_fraction, not both");
            }
        }
        if self.buffer_mb == 0 || self.buffer_mb > 65_536 {
            return bad("buffer_mb", self.buffer_mb.to_string(), "must be between 1 and 65536");
        }
        if self.top == 0 {
            return bad("top", "0".into(), "must be 1 or more");
        }
        if !(self.alert_sigmas > 0.0 && self.alert_sigmas.is_finite()) {
            return bad("alert_sigmas", self.alert_sigmas.to_string(), "must be a number above 0");
        }
        if (self.alert_host_mem_mb.is_some() || self.alert_gpu_mem_mb.is_some()) && self.monitor_window == 0 {
            return bad("monitor_window", "0".into(), "memory alerts need the live monitor: set monitor_window");
        }
        if cfg!(not(feature = "prometheus")) && self.prometheus_port.is_some() {
            return bad(
                "prometheus_port",
                self.prometheus_port.unwrap_or(0).to_string(),
                "this build has no Prometheus endpoint: enable stageprof's `prometheus` feature",
            );
        }
        if let Some(mb) = self.max_disk_mb {
            if mb == 0 {
                return bad("max_disk_mb", "0".into(), "must be 1 or more (leave it out to keep every event)");
            }
            if cfg!(not(feature = "report")) {
                return bad(
                    "max_disk_mb",
                    mb.to_string(),
                    "this build cannot sum up a run as it records: enable stageprof's `report` feature",
                );
            }
            if cfg!(feature = "cuda") && self.gpu == GpuTrace::Kernels {
                return bad(
                    "max_disk_mb",
                    mb.to_string(),
                    "a bounded profile sums its GPU figures up while recording, and kernels are joined to their stages over the whole file: set gpu = \"events\" (or \"off\") with it",
                );
            }
        }
        if cfg!(not(feature = "report")) {
            if let Some(f) = self.formats.iter().find(|f| **f != Format::Native) {
                return bad(
                    "formats",
                    format!("{f:?}").to_lowercase(),
                    "this build records only (the native file): enable stageprof's `report` feature",
                );
            }
            if self.monitor_window > 0 {
                return bad(
                    "monitor_window",
                    self.monitor_window.to_string(),
                    "this build has no live monitor: enable stageprof's `report` feature",
                );
            }
        }
        if cfg!(not(feature = "html")) && self.writes(Format::Html) {
            return bad(
                "formats",
                "\"html\"".into(),
                "this build has no HTML report: enable stageprof's `html` feature",
            );
        }
        Ok(())
    }

    /// Whether `f` is among the outputs.
    pub fn writes(&self, f: Format) -> bool {
        self.formats.contains(&f)
    }
}

fn parse_switch(var: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" | "" => Ok(false),
        _ => Err(ConfigError {
            source: format!("environment variable {var}"),
            key: None,
            value: Some(v.to_owned()),
            reason: "expected 0 or 1".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn kernel_tracing_is_budgeted_unless_a_stride_is_set() {
        assert_eq!(Config::default().kernel_every, 0);
        assert_eq!(Config::from_toml("kernel_every = 8", "t").unwrap().kernel_every, 8);
        let e = Config::from_toml("kernel_every = -1", "config file k.toml").unwrap_err();
        assert!(e.to_string().contains("kernel_every"), "{e}");
    }

    #[test]
    fn file_values_and_env_overrides() {
        let c = Config::from_toml("enabled = false\nformats = [\"native\"]\nsample_every = 4\ncpu_time = true\n", "t")
            .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.formats, vec![Format::Native]);
        assert_eq!(c.sample_every, 4);
        assert!(c.cpu_time);
        assert_eq!(c.buffer_mb, 256);
        assert_eq!(c.gpu, GpuTrace::Kernels);
        let c = Config::load_from(env(&[("STAGEPROF_GPU", "events")])).unwrap();
        assert_eq!(c.gpu, GpuTrace::Events);
        let e = Config::load_from(env(&[("STAGEPROF_GPU", "cupti")])).unwrap_err();
        assert_eq!(e.to_string(), "stageprof: invalid configuration in environment variable STAGEPROF_GPU = \"cupti\": expected off, events or kernels");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "enabled = false\nbuffer_mb = 8\n").unwrap();
        let path = path.to_str().unwrap();
        let c =
            Config::load_from(env(&[("STAGEPROF_CONFIG", path), ("STAGEPROF", "1"), ("STAGEPROF_OUT", "/x")])).unwrap();
        assert!(c.enabled);
        assert_eq!(c.buffer_mb, 8);
        assert_eq!(c.output_dir, PathBuf::from("/x"));
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let e = Config::load_from(env(&[("STAGEPROF", "maybe")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stageprof: invalid configuration in environment variable STAGEPROF = \"maybe\": expected 0 or 1"
        );
        let e = Config::from_toml("sample_every = 0", "config file s.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "stageprof: invalid configuration in config file s.toml: sample_every = \"0\": must be 1 or more (1 records every frame)"
        );
        let e = Config::from_toml("enabeld = true", "f").unwrap_err();
        assert!(e.reason.contains("enabeld"), "{}", e.reason);
        let e = Config::from_toml("enabled = \"yes\"", "f").unwrap_err();
        assert!(e.reason.contains("enabled") && e.reason.contains("yes"), "{}", e.reason);
        let summary = Config::from_toml("formats = [\"summary\"]", "f");
        assert_eq!(summary.is_ok(), cfg!(feature = "report"), "{summary:?}");
        let html = Config::from_toml("formats = [\"html\"]", "f");
        assert_eq!(html.is_ok(), cfg!(feature = "html"), "{html:?}");
        let e = Config::from_toml("formats = [\"html5\"]", "f").unwrap_err();
        assert!(e.reason.contains("html5"), "{}", e.reason);
        let e = Config::from_toml("sample_fraction = 1.5", "f").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sample_fraction"));
        let e = Config::load_from(env(&[("STAGEPROF_CONFIG", "/nonexistent/s.toml")])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/s.toml"), "{e}");
    }

    #[test]
    fn overrides_are_set_over_the_loaded_config_and_checked() {
        let base = Config::from_toml("buffer_mb = 64\ncpu_time = true\n", "t").unwrap();
        let mut over = toml::Table::new();
        over.insert("cpu_time".into(), toml::Value::Boolean(false));
        over.insert("sample_fraction".into(), toml::Value::Float(0.5));
        let c = base.with_overrides(over, "init()").unwrap();
        assert_eq!((c.buffer_mb, c.cpu_time, c.sample_fraction), (64, false, Some(0.5)));
        let mut unknown = toml::Table::new();
        unknown.insert("sample_evry".into(), toml::Value::Integer(2));
        let e = base.with_overrides(unknown, "init()").unwrap_err();
        assert_eq!((e.key.as_deref(), e.reason.as_str()), (Some("sample_evry"), "no such setting"));
        let mut wrong = toml::Table::new();
        wrong.insert("sample_every".into(), toml::Value::String("often".into()));
        let e = base.with_overrides(wrong, "init()").unwrap_err();
        assert!(e.reason.contains("sample_every"), "{e}");
    }
}
