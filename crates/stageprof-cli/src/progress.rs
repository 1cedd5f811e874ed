//! A progress bar for reading big traces: shown on a terminal, and only once
//! reading has taken more than a second. Files read at once (the ranks of
//! a job) show their bars together, one line each.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts the bytes read from a file into a progress bar.
pub(crate) struct ProgressReader<R> {
    inner: R,
    bar: ProgressBar,
    /// Where the bar is drawn once shown, beside the other files' bars.
    bars: MultiProgress,
    started: Instant,
    shown: bool,
    on_terminal: bool,
}

const SHOW_AFTER: Duration = Duration::from_secs(1);

impl<R: Read> ProgressReader<R> {
    pub(crate) fn new(inner: R, total_bytes: u64, label: &str, bars: &MultiProgress) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(label.to_owned());
        ProgressReader {
            inner,
            bar,
            bars: bars.clone(),
            started: Instant::now(),
            shown: false,
            on_terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        if !self.shown && self.on_terminal && self.started.elapsed() > SHOW_AFTER {
            self.bar = self.bars.add(self.bar.clone());
            self.shown = true;
        }
        if n == 0 {
            self.bar.finish_and_clear();
        }
        Ok(n)
    }
}

/// A native profile with GPU results is read twice: the bar follows.
impl<R: Seek> Seek for ProgressReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.bar.set_position(at);
        Ok(at)
    }
}

impl<R> Drop for ProgressReader<R> {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
