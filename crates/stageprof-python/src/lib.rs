//! `stageprof._native`: the Python package's door into the Rust core.
//!
//! A stage entered from Python is recorded by the same recorder as a Rust
//! stage ([`stageprof::foreign`]); a profile read from Python goes through
//! the same readers and analysis as `stageprof report`, and is rendered by
//! the same code. The typed Python API around it lives in `python/stageprof/`;
//! this module's stubs are `python/stageprof/_native.pyi`. PyO3 turns a Rust
//! panic into a Python exception, so none crosses the boundary.

// Only malloc_hooks.rs (patching the C heap's entry points) allows unsafe code.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod allocator_trace;
mod edge_tags;
mod malloc_hooks;
mod queue;
mod report;
mod session;
mod settings;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<session::Session>()?;
    m.add_class::<session::Stage>()?;
    m.add_class::<session::Frame>()?;
    m.add_class::<report::NativeReport>()?;
    m.add_class::<queue::NativeQueue>()?;
    m.add_function(wrap_pyfunction!(session::start, m)?)?;
    m.add_function(wrap_pyfunction!(session::counter, m)?)?;
    m.add_function(wrap_pyfunction!(session::ticks, m)?)?;
    m.add_function(wrap_pyfunction!(session::set_rank, m)?)?;
    m.add_function(wrap_pyfunction!(session::set_stream, m)?)?;
    m.add_function(wrap_pyfunction!(session::open_stage_ids, m)?)?;
    m.add_function(wrap_pyfunction!(session::record_task, m)?)?;
    m.add_function(wrap_pyfunction!(session::is_recording, m)?)?;
    m.add_function(wrap_pyfunction!(session::set_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(session::abandon_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(session::before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(session::after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(report::read, m)?)?;
    m.add("SCHEMA_VERSION", stageprof_analysis::SCHEMA_VERSION)?;
    Ok(())
}
