//! Bounded native profiles (`max_disk_mb`): a run left on all day must not
//! fill the disk with its raw events (about 32 bytes a stage).
//!
//! The collector then sums the run up as it reads, with the same decoder
//! and aggregator as the in-memory fallback, so every statistic covers the
//! whole run; and it writes the raw events to a series of parts, each a
//! complete native file (`profile.<n>.stgp`, its names and threads written
//! again), of about an eighth of the bound each. Parts past the bound are
//! deleted: the newest [`NEWEST`] stay, and of the older ones an evenly
//! thinned sample of at most [`SAMPLED`] (every `stride`-th part, the
//! stride doubling whenever they would not fit). A call open across the
//! moment a part ends shows in the earlier part as unfinished and in the
//! later one without its begin; the statistics have it whole.

use std::path::{Path, PathBuf};

use stageprof_model::native::{part_file_name, part_number, PROFILE_FILE};
use stageprof_model::{KeptPart, KeptRaw};

/// Parts the bound is shared among.
const PARTS: u64 = 8;
/// The newest parts, the one being written included, which always stay.
const NEWEST: usize = 4;
/// Older parts kept as a sample.
const SAMPLED: usize = 3;
/// No part is smaller than this, whatever the bound.
const MIN_PART_BYTES: u64 = 64 << 10;

/// The parts of a bounded native file.
pub(crate) struct Parts {
    dir: PathBuf,
    limit_bytes: u64,
    part_bytes: u64,
    /// Parts on disk, oldest first, with their number; the last is being written.
    on_disk: Vec<(u64, KeptPart)>,
    /// Parts opened so far.
    opened: u64,
    /// Older parts are kept when their number is a multiple of this.
    stride: u64,
}

/// Deletes the native profiles an earlier run left in `dir` (`profile.stgp`,
/// `profile.<n>.stgp`): this run's replace them, and parts of two runs in
/// one directory would read as one run and break the bound. Returns what
/// could not be deleted.
pub(crate) fn remove_earlier_profiles(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == PROFILE_FILE || part_number(name).is_some()
        })
        .filter_map(|p| {
            std::fs::remove_file(&p)
                .err()
                .map(|e| format!("cannot delete {} (an earlier run's profile): {e}", p.display()))
        })
        .collect()
}

impl Parts {
    /// Parts in `dir` sharing `limit_mb` MiB.
    pub(crate) fn new(dir: &Path, limit_mb: u64) -> Parts {
        let limit_bytes = limit_mb.saturating_mul(1 << 20);
        Parts {
            dir: dir.to_path_buf(),
            limit_bytes,
            part_bytes: (limit_bytes / PARTS).max(MIN_PART_BYTES),
            on_disk: Vec::new(),
            opened: 0,
            stride: 1,
        }
    }

    /// Whether the part being written, `bytes` long, is full.
    pub(crate) fn full(&self, bytes: u64) -> bool {
        bytes >= self.part_bytes
    }

    /// The next part, begun at `start_ns`: its path.
    pub(crate) fn open(&mut self, start_ns: u64) -> PathBuf {
        let number = self.opened;
        self.opened += 1;
        let path = self.dir.join(part_file_name(number));
        let part = KeptPart { path: path.display().to_string(), start_ns, end_ns: start_ns, bytes: 0 };
        self.on_disk.push((number, part));
        path
    }

    /// The number of the part being written.
    pub(crate) fn current(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    /// The part being written ends at `end_ns`, `bytes` long; returns the
    /// older parts that no longer fit, to delete.
    pub(crate) fn close(&mut self, end_ns: u64, bytes: u64) -> Vec<PathBuf> {
        if let Some((_, part)) = self.on_disk.last_mut() {
            part.end_ns = end_ns;
            part.bytes = bytes;
        }
        let numbers: Vec<u64> = self.on_disk.iter().map(|(n, _)| *n).collect();
        let (drop, stride) = thin(&numbers, self.stride);
        self.stride = stride;
        let (gone, stay): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.on_disk).into_iter().partition(|(n, _)| drop.contains(n));
        self.on_disk = stay;
        gone.into_iter().map(|(_, p)| PathBuf::from(p.path)).collect()
    }

    /// What was kept, once the last part is closed.
    pub(crate) fn kept(self) -> KeptRaw {
        KeptRaw {
            limit_bytes: self.limit_bytes,
            parts_written: self.opened,
            kept: self.on_disk.into_iter().map(|(_, p)| p).collect(),
        }
    }
}

/// Of the parts numbered `on_disk` (oldest first), those to delete so that
/// the newest [`NEWEST`] and at most [`SAMPLED`] older ones stay, the older
/// ones being the multiples of the returned stride (`stride`, doubled as
/// often as needed).
fn thin(on_disk: &[u64], mut stride: u64) -> (Vec<u64>, u64) {
    let older = &on_disk[..on_disk.len().saturating_sub(NEWEST)];
    let sampled = |stride: u64| older.iter().filter(|&&n| n % stride == 0).count();
    while sampled(stride) > SAMPLED {
        stride *= 2;
    }
    (older.iter().copied().filter(|n| n % stride != 0).collect(), stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts 0..n written one after another: the numbers left on disk.
    fn after(n: u64) -> Vec<u64> {
        let mut parts = Parts::new(Path::new("/nonexistent"), 8);
        for i in 0..n {
            parts.open(i * 10);
            parts.close(i * 10 + 10, 100);
        }
        parts.kept().kept.iter().map(|p| p.path.rsplit('.').nth(1).unwrap().parse().unwrap()).collect()
    }

    #[test]
    fn the_newest_parts_stay_and_older_ones_thin_out_evenly() {
        assert_eq!(after(3), [0, 1, 2]);
        assert_eq!(after(7), [0, 1, 2, 3, 4, 5, 6]);
        // 0..3 older than the newest four: three fit at stride 1, four need stride 2.
        assert_eq!(after(8), [0, 2, 4, 5, 6, 7]);
        assert_eq!(after(20), [0, 8, 16, 17, 18, 19]);
        // Never more than NEWEST + SAMPLED parts, however long the run.
        for n in 1..200 {
            let kept = after(n);
            assert!(kept.len() <= NEWEST + SAMPLED, "{n}: {kept:?}");
            assert!(kept.ends_with(&(n.saturating_sub(NEWEST as u64)..n).collect::<Vec<_>>()), "{n}: {kept:?}");
        }
    }

    #[test]
    fn parts_share_the_bound() {
        let parts = Parts::new(Path::new("/tmp"), 64);
        assert_eq!(parts.part_bytes, 8 << 20);
        assert!(!parts.full((8 << 20) - 1) && parts.full(8 << 20));
        assert_eq!(Parts::new(Path::new("/tmp"), 0).part_bytes, MIN_PART_BYTES);
    }
}
