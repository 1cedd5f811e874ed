//! Which files a path names as profiles, the same for every front door
//! (`stageprof report`, `stageprof diff`, Python's `stageprof.read`).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};

use stageprof_model::ingest::native_input::read_native_parts;
use stageprof_model::native::{part_number, PROFILE_FILE};
use stageprof_model::ProfileSink;

use crate::{Profile, ReadError};

/// The profiles a path names, each as the files it is read from: a file
/// itself; a directory's profiles (`*.stgp`, `*.json`, `*.json.gz`; not
/// stageprof's `summary.json`, nor its `trace.json` beside a native profile
/// of the same run) and its subdirectories' native ones
/// (`rank-N/profile.stgp`, as the Python package writes a distributed
/// job's), sorted; the kept parts of a bounded run (`profile.N.stgp`) are
/// one profile, in the order they were written. A directory with none: empty.
pub fn profiles_in(path: &Path) -> std::io::Result<Vec<Listed>> {
    if !path.is_dir() {
        return Ok(vec![Listed { files: vec![path.to_path_buf()], in_dir: false }]);
    }
    let mut files = Vec::new();
    let mut parts: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(path)?.filter_map(Result::ok) {
        let p = entry.path();
        if let Some(n) = bounded_part(&p) {
            parts.push((n, p));
        } else if p.is_file() && is_profile_name(&p) {
            files.push(p);
        } else if p.join(PROFILE_FILE).is_file() {
            files.push(p.join(PROFILE_FILE));
        }
    }
    let native_here = !parts.is_empty() || files.iter().any(|f| f.parent() == Some(path) && has_ext(f, ".stgp"));
    files.retain(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name != "summary.json" && !(native_here && name == "trace.json")
    });
    files.sort();
    let mut profiles: Vec<Listed> = files.into_iter().map(|f| Listed { files: vec![f], in_dir: true }).collect();
    if !parts.is_empty() {
        parts.sort();
        profiles.push(Listed { files: parts.into_iter().map(|(_, p)| p).collect(), in_dir: true });
    }
    Ok(profiles)
}

/// A profile a path names: its files, and whether they were found in a directory.
pub struct Listed {
    /// The file, or a bounded run's parts in the order they were written.
    pub files: Vec<PathBuf>,
    /// Found by listing a directory, rather than named.
    pub in_dir: bool,
}

impl Listed {
    /// Whether a front door leaves this profile out, saying so, rather than
    /// failing on `error`: a JSON file found in a directory that holds no
    /// trace (notes, a configuration). Named by itself, it is an error.
    pub fn skipped_for(&self, error: &ReadError) -> bool {
        self.in_dir && error.is_not_a_trace()
    }
}

/// How a profile's files are named in a report: the file, or the parts (`dir/profile.{0,4,5}.stgp`).
pub fn label(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        parts => {
            let numbers: Vec<String> = parts.iter().filter_map(|p| bounded_part(p)).map(|n| n.to_string()).collect();
            let dir = parts.first().and_then(|p| p.parent()).unwrap_or(Path::new(""));
            dir.join(format!("profile.{{{}}}.stgp", numbers.join(","))).display().to_string()
        }
    }
}

/// Reads one profile from its files, opened by the caller (one entry of
/// [`profiles_in`]): a single file of any format, through `single` (a
/// progress meter, say), or the parts of a bounded run, in order, as one
/// profile (see [`read_native_parts`]).
pub fn read_opened<R: BufRead + Seek>(
    mut files: Vec<File>,
    single: impl FnOnce(File) -> R,
    sink: &mut dyn ProfileSink,
) -> Result<Profile, ReadError> {
    if files.len() == 1 {
        return crate::read_seekable(single(files.remove(0)), sink);
    }
    let p = read_native_parts(files.into_iter().map(BufReader::new).collect(), sink).map_err(ReadError::Native)?;
    Ok(Profile { catalog: p.catalog, run: p.run })
}

/// The number of a bounded run's part file (`profile.N.stgp`).
pub fn bounded_part(p: &Path) -> Option<u64> {
    part_number(p.file_name()?.to_str()?).filter(|_| p.is_file())
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(ext))
}

fn is_profile_name(p: &Path) -> bool {
    [".stgp", ".json", ".json.gz"].iter().any(|ext| has_ext(p, ext))
}
