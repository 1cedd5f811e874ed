//! Helpers the command's tests share: running it, and stages of known length.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held by a test for as long as it runs, where it records spinning stages
/// or starts processes: tests running at once would preempt each other's
/// spins and blur the times they compare.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Busy for `d`: a stage of known wall time, unlike a sleep's.
pub fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

pub fn stageprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stageprof")).args(args).output().unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
