//! Thread CPU time. The kernel keeps it; reading it is a system call (about
//! 200 ns on the CI machine), which is why it is off unless asked for.

/// CPU time consumed by the calling thread, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Peak resident set size of the process, in bytes.
///
/// `VmHWM` first: `getrusage`'s maximum survives `execve`, so under
/// `cargo run` it would report cargo's own peak.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().strip_suffix("kB"));
    if let Some(kib) = hwm.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(kib * 1024);
    }
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (rc == 0).then(|| usage.ru_maxrss as u64 * 1024)
}

/// Current resident set size of the process, in bytes.
pub(crate) fn current_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// The kernel's id of the calling thread.
pub(crate) fn os_thread_id() -> u64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_advances_with_work_not_with_sleep() {
        let a = thread_cpu_ns();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = thread_cpu_ns();
        // Spinning advances it (however busy the machine is, given a few seconds).
        let start = std::time::Instant::now();
        while thread_cpu_ns() - b < 20_000_000 && start.elapsed().as_secs() < 10 {
            std::hint::black_box(0);
        }
        let c = thread_cpu_ns();
        assert!(b - a < 10_000_000, "sleeping used {} ns of CPU", b - a);
        assert!(c - b >= 20_000_000, "10 s of spinning used only {} ns of CPU", c - b);
        assert!(peak_rss_bytes().unwrap() > 0);
        assert!(current_rss_bytes().unwrap() > 0);
    }
}
