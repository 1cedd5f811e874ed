//! Reports for Python: of a finished session, or of files read with
//! `stageprof.read()`, rendered by the code `stageprof report` uses.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyOSError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use stageprof_analysis::{compare_ranks, RankRow, Summary};
use stageprof_readers::ReadError;
use stageprof_render::{
    report_html, report_json, report_table, report_with, Columns, RankInput, ReportError, TableOptions,
};

/// One profile's summary, or several ranks', with the files they came from.
#[pyclass(frozen, module = "stageprof._native")]
pub(crate) struct NativeReport {
    summaries: Vec<Summary>,
    rows: Vec<RankRow>,
    /// The files each summary was read from (for a session: its native file
    /// or a bounded run's kept parts; none if not kept).
    sources: Vec<Vec<PathBuf>>,
    files: Vec<String>,
    errors: Vec<String>,
}

impl NativeReport {
    /// The report of a finished session.
    pub(crate) fn finished(report: stageprof::Report) -> NativeReport {
        let mut native: Vec<PathBuf> =
            report.files.iter().filter(|f| f.extension().is_some_and(|e| e == "stgp")).cloned().collect();
        // A bounded run's parts (`profile.N.stgp`), in the order they were written.
        native.sort_by_key(|f| stageprof_readers::bounded_part(f));
        NativeReport {
            summaries: report.summary.into_iter().collect(),
            rows: Vec::new(),
            sources: vec![native],
            files: report.files.iter().map(|f| f.to_string_lossy().into_owned()).collect(),
            errors: report.errors,
        }
    }

    fn ranks(&self) -> Vec<RankInput<'_>> {
        self.summaries
            .iter()
            .zip(&self.sources)
            .enumerate()
            .map(|(i, (summary, source))| RankInput {
                label: if source.is_empty() { String::new() } else { stageprof_readers::label(source) },
                rank: summary.run.rank.unwrap_or(i as u32),
                summary,
            })
            .collect()
    }
}

#[pymethods]
impl NativeReport {
    /// summary.json of one profile, or the ranks' JSON of several.
    fn json(&self) -> String {
        report_json(&self.ranks(), &self.rows)
    }

    /// The terminal table, as `stageprof report` prints it: `columns` is
    /// `None` (the main ones, fitting `width`), `"wide"` (every measured one,
    /// however wide) or a list such as `"calls,p95,cpu"`.
    #[pyo3(signature = (color = false, width = None, columns = None))]
    fn table(&self, color: bool, width: Option<u16>, columns: Option<&str>) -> PyResult<String> {
        let (columns, width) = match columns {
            None => (Columns::Fit, width),
            Some("wide") => (Columns::Wide, None),
            Some(list) => (Columns::parse(list).map_err(PyValueError::new_err)?, width),
        };
        Ok(report_table(&self.ranks(), &self.rows, &TableOptions { color, width, columns }))
    }

    /// The HTML report, one self-contained page.
    fn html(&self) -> String {
        report_html(&self.ranks(), &self.rows)
    }

    /// Writes the Chrome trace of the (single) profile to `path`, reading it again.
    fn write_chrome(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let source = match &self.sources[..] {
            [source] if !source.is_empty() => source.clone(),
            [_] => {
                return Err(PyValueError::new_err(
                    "this session kept no native profile to make the Chrome trace from: add \"native\" to formats",
                ))
            }
            _ => return Err(PyValueError::new_err("a Chrome trace is written for one profile, not several ranks")),
        };
        Ok(py.detach(|| summarize(&source, 0, Some(&path))).map(drop)?)
    }

    /// Files the session wrote.
    #[getter]
    fn files(&self) -> Vec<String> {
        self.files.clone()
    }

    /// Outputs of the session that could not be written.
    #[getter]
    fn errors(&self) -> Vec<String> {
        self.errors.clone()
    }

    /// How many profiles the report holds (several: ranks of one job).
    fn __len__(&self) -> usize {
        self.summaries.len()
    }
}

/// Reads profiles (native, PyTorch/Chrome traces, plain or gzipped): one,
/// or several as ranks. A JSON file listed from a directory that holds no
/// trace is skipped with a warning (as `stageprof report` does).
#[pyfunction]
#[pyo3(signature = (paths, top = 3))]
pub(crate) fn read(py: Python<'_>, paths: Vec<PathBuf>, top: usize) -> PyResult<NativeReport> {
    if paths.is_empty() {
        return Err(PyValueError::new_err("read() needs at least one path"));
    }
    let mut listed = Vec::new();
    for path in &paths {
        let found = stageprof_readers::profiles_in(path)
            .map_err(|e| PyOSError::new_err(format!("cannot list {}: {e}", path.display())))?;
        if found.is_empty() {
            return Err(PyValueError::new_err(format!("{} holds no profiles", path.display())));
        }
        listed.extend(found);
    }
    let reads: Vec<Result<Summary, Unread>> =
        py.detach(|| listed.iter().map(|l| summarize(&l.files, top, None)).collect());
    let (mut sources, mut summaries) = (Vec::new(), Vec::new());
    for (listed, read) in listed.into_iter().zip(reads) {
        match read {
            Err(Unread { error, read_error: Some(why) }) if listed.skipped_for(&why) => {
                let message = CString::new(format!("stageprof: skipped {}", error.value(py)))?;
                PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 1)?;
            }
            read => {
                summaries.push(read?);
                sources.push(listed.files);
            }
        }
    }
    if summaries.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(PyValueError::new_err(format!("{} holds no profiles", names.join(", "))));
    }
    let rows = if summaries.len() > 1 { compare_ranks(&summaries) } else { Vec::new() };
    Ok(NativeReport { summaries, rows, sources, files: Vec::new(), errors: Vec::new() })
}

/// Why a profile was not read: the error for Python, and the reader's own where reading failed.
struct Unread {
    error: PyErr,
    read_error: Option<ReadError>,
}

impl From<Unread> for PyErr {
    fn from(unread: Unread) -> PyErr {
        unread.error
    }
}

impl From<PyErr> for Unread {
    fn from(error: PyErr) -> Unread {
        Unread { error, read_error: None }
    }
}

/// Reads one profile (a file, or a bounded run's parts) into its summary,
/// writing its Chrome trace to `chrome` if given.
fn summarize(files: &[PathBuf], top: usize, chrome: Option<&Path>) -> Result<Summary, Unread> {
    let path = PathBuf::from(stageprof_readers::label(files));
    let mut opened = Vec::new();
    for p in files {
        opened.push(File::open(p).map_err(|e| PyOSError::new_err(format!("cannot open {}: {e}", p.display())))?);
    }
    let chrome_out = match chrome {
        Some(c) => Some(
            File::create(c)
                .map(BufWriter::new)
                .map_err(|e| PyOSError::new_err(format!("cannot create {}: {e}", c.display())))?,
        ),
        None => None,
    };
    let read = |sink: &mut dyn stageprof_model::ProfileSink| {
        stageprof_readers::read_opened(opened, BufReader::new, sink).map(|p| (p.catalog, p.run))
    };
    let mut summary = report_with(read, top, chrome_out).map_err(|e| match e {
        ReportError::Read(e) => {
            Unread { error: PyValueError::new_err(format!("{}: {e}", path.display())), read_error: Some(e) }
        }
        ReportError::Chrome(e, _) => {
            PyOSError::new_err(format!("{}: writing the Chrome trace: {e}", path.display())).into()
        }
    })?;
    summary.run.source = format!("{} ({})", summary.run.source, path.display());
    Ok(summary)
}
