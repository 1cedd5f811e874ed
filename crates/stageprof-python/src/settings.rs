//! `init(**settings)`: keyword arguments merged over stageprof.toml and the
//! `STAGEPROF*` variables, as the Rust crate's `Config::load` reads them.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use stageprof::Config;

/// Python's names for settings whose TOML key differs.
const ALIASES: [(&str, &str); 1] = [("out_dir", "output_dir")];

/// The configuration `init(**settings)` starts with.
pub(crate) fn config(settings: &Bound<'_, PyDict>) -> PyResult<Config> {
    let base = Config::load().map_err(|e| PyValueError::new_err(e.to_string()))?;
    let mut overrides = toml::Table::new();
    for (key, value) in settings.iter() {
        let key: String = key.extract()?;
        if key == "gpu" && value.extract::<String>().is_ok_and(|v| v == "auto") {
            // The default: as the config file and environment say, started when torch starts CUDA.
            continue;
        }
        let name = ALIASES.iter().find(|(alias, _)| *alias == key).map_or(key.as_str(), |(_, k)| k);
        overrides.insert(name.to_owned(), toml_value(&key, &value)?);
    }
    let bounded = overrides.contains_key("max_disk_mb") || base.max_disk_mb.is_some();
    if bounded && !overrides.contains_key("gpu") && base.gpu == stageprof::GpuTrace::Kernels {
        // "auto" in a bounded run: kernels are joined over the whole file, events while recording.
        overrides.insert("gpu".to_owned(), toml::Value::String("events".to_owned()));
    }
    let mut config = base.with_overrides(overrides, "init()").map_err(|e| {
        let message = match &e.key {
            Some(key) if e.reason == "no such setting" => format!("init() got an unknown setting {key:?}"),
            _ => e.to_string(),
        };
        if e.reason == "no such setting" {
            PyTypeError::new_err(message)
        } else {
            PyValueError::new_err(message)
        }
    })?;
    // Python keeps SIGINT (KeyboardInterrupt) and its own exit; the package
    // writes the outputs then (see python/stageprof/_session.py).
    config.signals = false;
    Ok(config)
}

/// A keyword argument as TOML: bool, int, float, str, path, or a list of str.
fn toml_value(key: &str, value: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    let wrong = || {
        PyTypeError::new_err(format!(
            "init() setting {key:?} must be a bool, int, float, str, path or list of str, not {}",
            value.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    };
    if value.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(toml::Value::Integer(value.extract().map_err(|_| wrong())?));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items: Vec<String> = value.extract().map_err(|_| wrong())?;
        return Ok(toml::Value::Array(items.into_iter().map(toml::Value::String).collect()));
    }
    let path: std::path::PathBuf = value.extract().map_err(|_| wrong())?;
    Ok(toml::Value::String(path.to_string_lossy().into_owned()))
}
