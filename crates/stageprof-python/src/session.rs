//! The global session seen from Python, and its stages and frames.
//!
//! A `Stage` object is made once per name (the Python side caches it), so
//! entering one costs no allocation: `__enter__` begins a stage of the Rust
//! recorder and keeps its token on this thread's stack; `__exit__` takes it
//! back and ends it, marked unwound when an exception leaves it.

use std::cell::RefCell;
use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use stageprof::foreign::{self, OpenStage};
use stageprof::FrameGuard;

use crate::allocator_trace::{AllocatorTrace, Window};
use crate::edge_tags;
use crate::report::NativeReport;

thread_local! {
    /// This thread's open stages, innermost last: name id and token.
    static OPEN: RefCell<Vec<(u32, Option<OpenStage>)>> = const { RefCell::new(Vec::new()) };
    /// This thread's open frames, innermost last.
    static FRAMES: RefCell<Vec<FrameGuard>> = const { RefCell::new(Vec::new()) };
}

/// The running global session.
#[pyclass(frozen, module = "stageprof._native")]
pub(crate) struct Session {
    session: Mutex<Option<stageprof::Session>>,
    output_dir: String,
    enabled: bool,
    /// GPU recording as configured (`off`, `events`, `kernels`), started by `start_gpu`.
    gpu: &'static str,
    /// Whether GPU memory per stage is recorded (from torch's allocator trace).
    gpu_memory: bool,
    allocator: Mutex<AllocatorTrace>,
}

/// Starts the global session with `settings` merged over the config file and environment.
#[pyfunction]
pub(crate) fn start(settings: &Bound<'_, PyDict>) -> PyResult<Session> {
    let mut config = crate::settings::config(settings)?;
    foreign::set_front_door("python");
    #[cfg(not(feature = "cuda"))]
    {
        config.gpu = stageprof::GpuTrace::Off;
    }
    if config.enabled && config.memory {
        crate::malloc_hooks::install();
    }
    let output_dir = config.output_dir.to_string_lossy().into_owned();
    let enabled = config.enabled;
    let gpu = match config.gpu {
        stageprof::GpuTrace::Off => "off",
        stageprof::GpuTrace::Events => "events",
        stageprof::GpuTrace::Kernels => "kernels",
    };
    // GPU recording starts once torch has initialized CUDA (start_gpu), and
    // GPU memory is torch's allocator's, not what stageprof's own buffers hold.
    config.gpu_on_demand = true;
    let gpu_memory = std::mem::replace(&mut config.gpu_memory, false);
    let session = stageprof::init_with(config);
    Ok(Session {
        session: Mutex::new(Some(session)),
        output_dir,
        enabled,
        gpu,
        gpu_memory,
        allocator: Mutex::default(),
    })
}

#[pymethods]
impl Session {
    /// Stops recording and writes the outputs, `reason` saying why the run
    /// ended; `None` if already finished.
    #[pyo3(signature = (reason = "finish"))]
    fn finish(&self, py: Python<'_>, reason: &str) -> PyResult<Option<NativeReport>> {
        let taken = self.session.lock().map_err(|_| PyRuntimeError::new_err("the session's lock is poisoned"))?.take();
        let Some(session) = taken else { return Ok(None) };
        let report = py.detach(|| session.finish_because(reason));
        Ok(Some(NativeReport::finished(report)))
    }

    /// Starts GPU profiling now: `trace` is `"events"` or `"kernels"`, on CUDA
    /// device `device`; whether it runs (one line on stderr says why not).
    fn start_gpu(&self, py: Python<'_>, trace: &str, device: u32) -> PyResult<bool> {
        let trace = match trace {
            "events" => stageprof::GpuTrace::Events,
            "kernels" => stageprof::GpuTrace::Kernels,
            other => return Err(PyValueError::new_err(format!("gpu must be off, events or kernels, not {other:?}"))),
        };
        let guard = self.session.lock().map_err(|_| PyRuntimeError::new_err("the session's lock is poisoned"))?;
        let Some(session) = guard.as_ref() else { return Ok(false) };
        Ok(py.detach(|| gpu_start(session, trace, device)))
    }

    /// GPU recording as configured: `off`, `events` or `kernels`.
    #[getter]
    fn gpu(&self) -> &str {
        self.gpu
    }

    /// Whether GPU memory per stage is recorded (the `gpu_memory` setting).
    #[getter]
    fn gpu_memory(&self) -> bool {
        self.gpu_memory
    }

    /// Records the GPU memory levels of a snapshot of torch's allocator
    /// trace (`torch.cuda.memory._snapshot()`), which was on from
    /// `start_unix_ns` to `end_unix_ns`; `continues`: it was not turned off
    /// since the last snapshot.
    fn read_allocator_trace(
        &self,
        snapshot: &Bound<'_, PyDict>,
        start_unix_ns: u64,
        end_unix_ns: u64,
        continues: bool,
    ) -> PyResult<()> {
        let window = Window { start_ns: start_unix_ns, end_ns: end_unix_ns.max(start_unix_ns), continues };
        let mut trace =
            self.allocator.lock().map_err(|_| PyRuntimeError::new_err("the allocator trace's lock is poisoned"))?;
        trace.read(snapshot, window)
    }

    /// The allocator's trace is about to be turned on for the first time:
    /// a bounded profile, summed up while recording, waits from now on for
    /// `allocator_trace_mark` to say each call's levels are in.
    fn allocator_trace_begins(&self) {
        stageprof::foreign::gpu_memory_producer_starts();
    }

    /// Every level of the allocator's trace up to `unix_ns` has been read;
    /// `trace_off`: the trace was off then; `done`: it will not be read again.
    fn allocator_trace_mark(&self, unix_ns: u64, trace_off: bool, done: bool) {
        stageprof::foreign::gpu_memory_mark(unix_ns, trace_off, done);
    }

    /// Takes the allocator's blocks from a snapshot taken just before its
    /// trace is turned on (the trace gives requested sizes; torch's counters
    /// count blocks, which are replayed from these).
    fn take_allocator_layout(&self, snapshot: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut trace =
            self.allocator.lock().map_err(|_| PyRuntimeError::new_err("the allocator trace's lock is poisoned"))?;
        trace.take_layout(snapshot)
    }

    /// Stage edges are told to torch's allocator trace through `setter`
    /// (torch's per-thread metadata setter) while it is on; `None`: no longer.
    fn tag_stage_edges(&self, setter: Option<Py<PyAny>>) {
        match setter {
            Some(setter) => edge_tags::start(setter),
            None => edge_tags::stop(),
        }
    }

    /// Allocated bytes the allocator trace's events did not explain (events
    /// between two reads, or blocks replayed at the wrong size): the levels
    /// after them are right, the moments of those changes are not known.
    #[getter]
    fn gpu_memory_unexplained_bytes(&self) -> u64 {
        self.allocator.lock().map_or(0, |a| a.unexplained_bytes)
    }

    /// Where the outputs are written.
    #[getter]
    fn output_dir(&self) -> &str {
        &self.output_dir
    }

    /// Whether the session records (settings and environment allowed it).
    #[getter]
    fn enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(feature = "cuda")]
fn gpu_start(session: &stageprof::Session, trace: stageprof::GpuTrace, device: u32) -> bool {
    session.profiler().start_gpu(trace, device)
}

#[cfg(not(feature = "cuda"))]
fn gpu_start(_: &stageprof::Session, _: stageprof::GpuTrace, _: u32) -> bool {
    false
}

/// Makes the CUDA stream `raw` the one this thread's stages time GPU work on.
#[pyfunction]
pub(crate) fn set_stream(raw: usize) {
    #[cfg(feature = "cuda")]
    foreign::set_stream(raw);
    #[cfg(not(feature = "cuda"))]
    let _ = raw;
}

/// A named stage: `with` it to record one call.
#[pyclass(frozen, module = "stageprof._native")]
pub(crate) struct Stage {
    name: u32,
    label: String,
}

#[pymethods]
impl Stage {
    #[new]
    fn new(name: &str) -> Stage {
        Stage { name: foreign::name_id(name), label: name.to_owned() }
    }

    /// The stage's name.
    #[getter]
    fn name(&self) -> &str {
        &self.label
    }

    /// The name's id in the recorder's name table.
    #[getter]
    fn name_id(&self) -> u32 {
        self.name
    }

    fn __enter__(&self, py: Python<'_>) {
        name_thread_once(py);
        let open = edge_tags::at_edge(py, || foreign::begin(self.name));
        OPEN.with(|stack| stack.borrow_mut().push((self.name, open)));
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> bool {
        let open = OPEN.with(|stack| {
            let mut stack = stack.borrow_mut();
            // The innermost call of this stage: the top, unless exits came out of order.
            let at = stack.iter().rposition(|&(name, _)| name == self.name)?;
            stack.remove(at).1
        });
        if let Some(open) = open {
            edge_tags::at_edge(py, || foreign::end(open, !exc_type.is_none()));
        }
        false
    }

    fn __repr__(&self) -> String {
        format!("stageprof.stage({:?})", self.label)
    }
}

/// One iteration of the pipeline: `with` it around each.
#[pyclass(frozen, module = "stageprof._native")]
pub(crate) struct Frame;

#[pymethods]
impl Frame {
    #[new]
    fn new() -> Frame {
        Frame
    }

    fn __enter__(&self, py: Python<'_>) {
        name_thread_once(py);
        let guard = edge_tags::at_edge(py, stageprof::frame);
        FRAMES.with(|frames| frames.borrow_mut().push(guard));
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> bool {
        let guard = FRAMES.with(|frames| frames.borrow_mut().pop());
        edge_tags::at_edge(py, || drop(guard));
        false
    }
}

/// Says which rank of a distributed job this process is (for sessions started from now on).
#[pyfunction]
pub(crate) fn set_rank(rank: u32) {
    foreign::set_rank(rank);
}

/// The recorder's clock now, in ticks.
#[pyfunction]
pub(crate) fn ticks() -> u64 {
    foreign::now_ticks()
}

/// The name ids of the stages open on this thread (entered with `with`), outermost first.
#[pyfunction]
pub(crate) fn open_stage_ids() -> Vec<u32> {
    OPEN.with(|stack| stack.borrow().iter().map(|&(name, _)| name).collect())
}

/// Records one call of a stage that may span awaits (see `stageprof::foreign::task`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_task(
    name_id: u32,
    start_ticks: u64,
    end_ticks: u64,
    busy_ticks: u64,
    id: u64,
    parent: u64,
    ancestors: Vec<u32>,
) {
    foreign::task(name_id, start_ticks, end_ticks, busy_ticks, id, parent, &ancestors);
}

thread_local! {
    /// Whether this thread's `threading` name has been handed to the recorder.
    static NAMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Hands the recorder this thread's `threading` name, once, before its
/// first record: the profile's threads (and the pipeline's stages) then
/// carry the names Python gave them.
pub(crate) fn name_thread_once(py: Python<'_>) {
    if NAMED.get() {
        return;
    }
    NAMED.set(true);
    let name = py.import("threading").and_then(|t| t.call_method0("current_thread")?.getattr("name")?.extract());
    if let Ok(name) = name {
        foreign::name_current_thread(name);
    }
}

/// Records a sample of counter `name`.
#[pyfunction]
pub(crate) fn counter(py: Python<'_>, name: &str, value: f64) {
    name_thread_once(py);
    foreign::counter(foreign::name_id(name), value);
}

/// Just before `fork`: takes the recorder's locks, so the child gets them free.
#[pyfunction]
pub(crate) fn before_fork() {
    foreign::before_fork();
}

/// Just after `fork`, in parent and child: lets the locks go.
#[pyfunction]
pub(crate) fn after_fork() {
    foreign::after_fork();
}

/// In a forked child: lets the parent's session go without writing.
#[pyfunction]
pub(crate) fn abandon_after_fork() {
    foreign::abandon_after_fork();
    edge_tags::abandon_after_fork();
}

/// Whether the global session records now.
#[pyfunction]
pub(crate) fn is_recording() -> bool {
    stageprof::is_recording()
}

/// Turns the global session's recording on or off at run time.
#[pyfunction]
pub(crate) fn set_enabled(on: bool) {
    stageprof::set_enabled(on);
}
