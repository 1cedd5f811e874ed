//! The run history: one SQLite file (WAL, so writers from several CI jobs
//! can share it), a versioned schema migrated forward on open, and a refusal
//! to touch any file that is not a stageprof history.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, Params, Row, TransactionBehavior,
};
use stageprof_analysis::{FigureValue, StageFigure, Summary, Unit};
use stageprof_render::history::{HistoryRun, HistoryStage, HISTORY_FIGURES};

/// Marks a database as stageprof's ("SPRF").
const APPLICATION_ID: i32 = 0x5350_5246;
/// How long a writer waits for another to finish.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Migrations, in order: the schema's version is how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: runs, their labels, and per-stage figures.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        recorded_unix_ns INTEGER NOT NULL,
        started_unix_ns INTEGER,
        source TEXT NOT NULL,
        host TEXT,
        gpu TEXT,
        git_commit TEXT,
        config TEXT,
        duration_ns INTEGER,
        frames INTEGER,
        frame_mean_ns INTEGER,
        frame_p95_ns INTEGER
    );
    CREATE TABLE labels (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        label TEXT NOT NULL
    );
    CREATE INDEX labels_by_run ON labels(run_id);
    CREATE TABLE stages (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        depth INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        self_ns INTEGER NOT NULL,
        mean_ns INTEGER NOT NULL,
        p95_ns INTEGER NOT NULL,
        cpu_ns INTEGER,
        gpu_busy_ns INTEGER,
        host_mem_peak_bytes INTEGER,
        gpu_mem_peak_bytes INTEGER,
        PRIMARY KEY (run_id, path)
    ) WITHOUT ROWID;
    CREATE INDEX stages_by_path ON stages(path, run_id);",
    // 2: stage columns named as summary.json names the figures they hold.
    "ALTER TABLE stages RENAME COLUMN host_mem_peak_bytes TO mem_peak_bytes;",
];

/// What is stored about a run besides its stages.
#[derive(Clone, Debug, Default)]
pub(super) struct RunMeta {
    pub source: String,
    pub git_commit: Option<String>,
    pub labels: Vec<String>,
}

pub(super) struct History {
    conn: Connection,
    path: PathBuf,
}

/// The default database: `stageprof/history.db` in the user's data directory.
pub(super) fn default_path() -> Result<PathBuf, String> {
    dirs::data_dir()
        .map(|d| d.join("stageprof").join("history.db"))
        .ok_or_else(|| "no data directory for this user (set $HOME or pass --db)".into())
}

impl History {
    /// Opens the history at `path`, creating it (and its directory) if absent.
    pub(super) fn open(path: &Path) -> Result<History, String> {
        let existed = path.exists();
        if !existed {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        let flags = if existed {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut h = History { conn, path: path.to_path_buf() };
        h.conn.busy_timeout(BUSY_WAIT).map_err(|e| h.error("setting up", e))?;
        h.check_and_migrate()?;
        Ok(h)
    }

    /// Refuses foreign and newer files, then applies the migrations this file lacks.
    fn check_and_migrate(&mut self) -> Result<(), String> {
        let (app_id, version, tables): (i32, usize, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version),
                        (SELECT count(*) FROM sqlite_master)",
                [],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize, r.get(2)?)),
            )
            .map_err(|e| self.error("reading", e))?;
        if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
            return Err(format!(
                "{} is not a stageprof history (another program's SQLite database); it is left as it is",
                self.path.display()
            ));
        }
        if version > MIGRATIONS.len() {
            return Err(format!(
                "{} was written by a newer stageprof (schema {version}; this one knows up to {}); it is left as it is",
                self.path.display(),
                MIGRATIONS.len()
            ));
        }
        self.set_wal()?;
        self.conn.pragma_update(None, "foreign_keys", true).map_err(|e| self.error("setting up", e))?;
        if version == MIGRATIONS.len() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e| error(&path, "migrating", e);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        // Another writer may have migrated while this one waited for the lock.
        let now = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, usize>(0)).map_err(err)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(now) {
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Switches to WAL. SQLite answers a switch that races another
    /// connection's with "busy" at once, without its busy handler, so the
    /// switch is retried here for as long as a writer would wait.
    fn set_wal(&self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + BUSY_WAIT;
        loop {
            match self.conn.pragma_update(None, "journal_mode", "WAL") {
                Err(e)
                    if matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy))
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                done => return done.map_err(|e| self.error("setting up", e)),
            }
        }
    }

    fn error(&self, doing: &str, e: rusqlite::Error) -> String {
        error(&self.path, doing, e)
    }

    /// Stores a run's summary; all of it or nothing. Returns its id.
    pub(super) fn record(&mut self, s: &Summary, meta: &RunMeta, now_unix_ns: i64) -> Result<i64, String> {
        let path = self.path.clone();
        let err = |e| error(&path, "recording the run", e);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let opt = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        let n = |v: u64| v.min(i64::MAX as u64) as i64;
        let host = (!s.run.host.hostname.is_empty()).then(|| s.run.host.hostname.clone());
        let gpu = (!s.run.devices.is_empty()).then(|| s.run.devices.join(", "));
        let config =
            format!("cpu_time={} memory_tracked={} end={}", s.run.cpu_time, s.run.memory_tracked, s.run.end_reason);
        let frames = (s.frames.count > 0).then_some(s.frames.count);
        tx.execute(
            "INSERT INTO runs (recorded_unix_ns, started_unix_ns, source, host, gpu, git_commit, config,
                               duration_ns, frames, frame_mean_ns, frame_p95_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                now_unix_ns,
                (s.run.start_unix_ns > 0).then(|| n(s.run.start_unix_ns)),
                meta.source,
                host,
                gpu,
                meta.git_commit,
                config,
                n(s.run.duration_ns),
                opt(frames),
                frames.map(|_| n(s.frames.duration.mean_ns)),
                frames.map(|_| n(s.frames.duration.p95_ns)),
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        {
            let mut label = tx.prepare("INSERT INTO labels (run_id, label) VALUES (?1, ?2)").map_err(err)?;
            for l in &meta.labels {
                label.execute(params![id, l]).map_err(err)?;
            }
            let columns: Vec<&str> = HISTORY_FIGURES.iter().map(|f| f.key).collect();
            let slots: Vec<String> = (4..4 + columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT OR REPLACE INTO stages (run_id, path, depth, {}) VALUES (?1, ?2, ?3, {})",
                columns.join(", "),
                slots.join(", ")
            );
            let mut stage = tx.prepare(&sql).map_err(err)?;
            for st in s.stages.iter().filter(|st| !st.derived) {
                let mut values: Vec<Value> = vec![id.into(), st.path.join("/").into(), i64::from(st.depth).into()];
                values.extend(HISTORY_FIGURES.iter().map(|f| f.value(st).map_or(Value::Null, stored)));
                stage.execute(params_from_iter(values)).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// The newest run, if any.
    pub(super) fn newest_run(&self) -> Result<Option<HistoryRun>, String> {
        let sql = "SELECT id, recorded_unix_ns, source, host, gpu, git_commit, frames, frame_mean_ns,
                          (SELECT group_concat(label, ',') FROM labels WHERE run_id = runs.id)
                   FROM runs ORDER BY id DESC LIMIT 1";
        let runs = self.rows(sql, [], |r| {
            Ok(HistoryRun {
                id: r.get(0)?,
                recorded_unix_ns: r.get(1)?,
                source: r.get(2)?,
                host: r.get(3)?,
                gpu: r.get(4)?,
                git_commit: r.get(5)?,
                frames: r.get(6)?,
                frame_mean_ns: r.get(7)?,
                labels: r
                    .get::<_, Option<String>>(8)?
                    .map(|l| l.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })?;
        Ok(runs.into_iter().next())
    }

    /// A run's stages, longest wall time first; an unknown id is an error that says so.
    pub(super) fn stages_of(&self, run: i64) -> Result<Vec<HistoryStage>, String> {
        let known: Option<i64> = self
            .conn
            .query_row("SELECT id FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(|e| self.error("reading", e))?;
        if known.is_none() {
            let last: Option<i64> = self
                .conn
                .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
                .map_err(|e| self.error("reading", e))?;
            return Err(match last {
                Some(last) => format!("no run {run} in {} (runs are numbered 1 to {last})", self.path.display()),
                None => format!("no run {run} in {}: it holds no runs yet", self.path.display()),
            });
        }
        let columns: Vec<&str> = HISTORY_FIGURES.iter().map(|f| f.key).collect();
        let sql = format!("SELECT path, {} FROM stages WHERE run_id = ?1 ORDER BY wall_ns DESC", columns.join(", "));
        self.rows(&sql, [run], |r| {
            let values = HISTORY_FIGURES
                .iter()
                .enumerate()
                .map(|(i, f)| Ok(r.get::<_, Option<i64>>(i + 1)?.map(|v| read_back(f, v))))
                .collect::<rusqlite::Result<_>>()?;
            Ok(HistoryStage { path: r.get(0)?, values })
        })
    }

    /// A stage's mean time per call in every run that has it, oldest first: `(run id, mean ns)`.
    pub(super) fn series(&self, path: &str) -> Result<Vec<(i64, u64)>, String> {
        self.rows("SELECT run_id, mean_ns FROM stages WHERE path = ?1 ORDER BY run_id", [path], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// Every row of a query, each made by `row`.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl Params,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, String> {
        let mut q = self.conn.prepare_cached(sql).map_err(|e| self.error("reading", e))?;
        let rows = q.query_map(params, row).and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| self.error("reading", e))
    }
}

/// A figure as SQLite stores it (an integer; counts and times beyond `i64` saturate).
fn stored(v: FigureValue) -> Value {
    match v {
        FigureValue::Unsigned(v) => Value::Integer(v.min(i64::MAX as u64) as i64),
        FigureValue::Signed(v) => Value::Integer(v),
        FigureValue::Real(v) => Value::Real(v),
        FigureValue::Flag(v) => Value::Integer(i64::from(v)),
    }
}

/// A stored integer as the figure it was.
fn read_back(f: &StageFigure, v: i64) -> FigureValue {
    match f.unit {
        Unit::SignedBytes => FigureValue::Signed(v),
        _ => FigureValue::Unsigned(v.max(0) as u64),
    }
}

/// A database error in words: a lock, a full disk and a damaged file each say what happened.
fn error(path: &Path, doing: &str, e: rusqlite::Error) -> String {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "{doing}: {p} is locked by another stageprof (waited {} s); try again when it is done",
            BUSY_WAIT.as_secs()
        ),
        Some(ErrorCode::DiskFull) => {
            format!("{doing}: the disk holding {p} is full; nothing was written (the transaction was rolled back)")
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            format!("{p} is not a stageprof history (not SQLite, or damaged: {e}); it is left as it is")
        }
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            format!("{doing}: cannot write {p} ({e})")
        }
        _ => format!("{doing} {p}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stageprof_analysis::StageStats;

    fn summary(stages: usize) -> Summary {
        let mut s = Summary::default();
        for i in 0..stages {
            s.stages.push(StageStats {
                name: format!("s{i}"),
                path: vec![format!("stage number {i:06}")],
                calls: 1,
                ..StageStats::default()
            });
        }
        s
    }

    #[test]
    fn a_full_disk_records_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut h = History::open(&path).unwrap();
        h.record(&summary(3), &RunMeta::default(), 1).unwrap();
        // SQLite's page limit stands in for a full disk: the same error, SQLITE_FULL.
        let pages: i64 = h.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        h.conn.pragma_update(None, "max_page_count", pages + 1).unwrap();
        let err = h.record(&summary(5000), &RunMeta::default(), 2).unwrap_err();
        assert!(err.contains("is full; nothing was written"), "{err}");
        assert_eq!(h.newest_run().unwrap().map(|r| r.id), Some(1), "the failed run left no row");
        let stages: i64 = h.conn.query_row("SELECT count(*) FROM stages", [], |r| r.get(0)).unwrap();
        assert_eq!(stages, 3);
    }

    #[test]
    fn a_history_of_schema_1_is_migrated_with_its_figures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, recorded_unix_ns, source) VALUES (1, 5, 'old');
             INSERT INTO stages (run_id, path, depth, calls, wall_ns, self_ns, mean_ns, p95_ns, host_mem_peak_bytes)
             VALUES (1, 'load', 0, 2, 40, 40, 20, 25, 4096);",
        )
        .unwrap();
        drop(conn);
        let h = History::open(&path).unwrap();
        let stages = h.stages_of(1).unwrap();
        assert_eq!(stages.len(), 1);
        let mem_peak = stages[0].value(&stageprof_analysis::figures::MEM_PEAK);
        assert_eq!(mem_peak, Some(FigureValue::Unsigned(4096)));
        assert_eq!(stages[0].value(&stageprof_analysis::figures::CPU), None);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(History::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = History::open(&path).err().unwrap();
        assert!(err.contains("written by a newer stageprof (schema 99; this one knows up to 2)"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
