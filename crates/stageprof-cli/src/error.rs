//! Why a command failed, as a value; `main` prints it once, prefixed `stageprof:`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use stageprof_analysis::diff::DiffError;
use stageprof_readers::ReadError;

#[derive(Debug)]
pub(crate) enum CliError {
    /// A file could not be opened, created, listed or written.
    File {
        doing: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// A profile could not be read: the read error says what and where.
    Read {
        path: PathBuf,
        error: ReadError,
    },
    /// A profile was read, but its Chrome trace could not be written.
    Chrome {
        path: PathBuf,
        error: io::Error,
    },
    /// The report could not be written to standard output (a closed pipe).
    Stdout(io::Error),
    /// A directory given as one side of a diff holds no profiles.
    NoProfiles {
        dir: PathBuf,
    },
    Diff(DiffError),
    /// Arguments that do not go together.
    Usage(&'static str),
    /// The history store's error, worded by it with the file it concerns.
    History(String),
    /// The demo could not run, or its reconstruction failed its check.
    Demo(String),
    /// A thread reading a profile panicked (a bug in stageprof).
    ReaderPanicked,
}

impl CliError {
    pub(crate) fn file(doing: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CliError {
        let path = path.into();
        move |error| CliError::File { doing, path, error }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::File { doing, path, error } => write!(f, "cannot {doing} {}: {error}", path.display()),
            CliError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            CliError::Chrome { path, error } => write!(f, "{}: writing the Chrome trace: {error}", path.display()),
            CliError::Stdout(error) => write!(f, "writing to standard output: {error}"),
            CliError::NoProfiles { dir } => {
                write!(f, "{} holds no profiles (*.stgp, *.json, *.json.gz)", dir.display())
            }
            CliError::Diff(e) => write!(f, "{e}"),
            CliError::Usage(e) => f.write_str(e),
            CliError::History(e) | CliError::Demo(e) => f.write_str(e),
            CliError::ReaderPanicked => f.write_str("a thread reading a profile panicked (a bug: please report it)"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<String> for CliError {
    /// The history store words its own errors.
    fn from(e: String) -> Self {
        CliError::History(e)
    }
}
