//! What a session leaves behind at finish: the summary and Chrome trace
//! (one read of the native file), summary.json, report.html, and the table
//! on stderr; with the `report` feature off, the native file alone.

use std::path::PathBuf;

#[cfg(feature = "report")]
pub(crate) use with_report::write;

use crate::collector::{Collected, Recorded};
use crate::config::Config;

/// What `finish` wrote and found.
#[derive(Debug, Default)]
pub struct Report {
    /// `None` when the profiler was off or already finished.
    #[cfg(feature = "report")]
    pub summary: Option<stageprof_analysis::Summary>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Outputs that failed, each naming its path.
    pub errors: Vec<String>,
}

/// Without the `report` feature: the native file, which is all the config may ask for.
#[cfg(not(feature = "report"))]
pub(crate) fn write(_: &Config, collected: Collected) -> Report {
    let Collected { recorded, errors } = collected;
    let files = match recorded {
        Recorded::File(native) => vec![native],
        Recorded::Live(never) => match *never {},
    };
    Report { files, errors }
}

#[cfg(feature = "report")]
mod with_report {
    use std::fs::File;
    use std::io::{BufReader, BufWriter, IsTerminal, Write};

    #[cfg(feature = "html")]
    use stageprof_render::render_html;
    use stageprof_render::{chrome_of_parts, render_table, report_native, summary_json, ReportError, TableOptions};

    use super::{Collected, Config, Recorded, Report};
    use crate::config::Format;
    use crate::notice::report;

    /// Writes the summary, Chrome trace and table that `config` asks for.
    /// `errors` are the collector's (already reported); new ones are reported here.
    pub(crate) fn write(config: &Config, collected: Collected) -> Report {
        let Collected { recorded, mut errors } = collected;
        let fail = |errors: &mut Vec<String>, e: String| {
            report(&e);
            errors.push(e);
        };
        let dir = &config.output_dir;
        let mut files = Vec::new();
        let chrome_path = dir.join("trace.json");
        let mut summary = match recorded {
            Recorded::File(native) => {
                let chrome = match config.writes(Format::Chrome).then(|| File::create(&chrome_path)) {
                    Some(Ok(f)) => Some(BufWriter::new(f)),
                    Some(Err(e)) => {
                        fail(&mut errors, format!("cannot write {}: {e}", chrome_path.display()));
                        None
                    }
                    None => None,
                };
                let wants_chrome = chrome.is_some();
                let read = File::open(&native).map(|f| report_native(BufReader::new(f), config.top, chrome));
                let summary = match read {
                    Ok(Ok(summary)) => {
                        if wants_chrome {
                            files.push(chrome_path);
                        }
                        summary
                    }
                    Ok(Err(ReportError::Chrome(e, summary))) => {
                        fail(&mut errors, format!("cannot write {}: {e}", chrome_path.display()));
                        *summary
                    }
                    Ok(Err(ReportError::Read(e))) => {
                        fail(&mut errors, format!("cannot read back {}: {e}", native.display()));
                        return Report { summary: None, files, errors };
                    }
                    Err(e) => {
                        fail(&mut errors, format!("cannot read back {}: {e}", native.display()));
                        return Report { summary: None, files, errors };
                    }
                };
                if config.writes(Format::Native) {
                    files.push(native);
                } else {
                    let _ = std::fs::remove_file(native);
                }
                summary
            }
            Recorded::Live(mut live) => {
                // A bounded profile's parts hold the raw events it kept; else nothing does.
                let parts: Vec<std::path::PathBuf> =
                    live.run.bounded.iter().flat_map(|b| &b.kept).map(|p| p.path.clone().into()).collect();
                if config.writes(Format::Chrome) {
                    let written = match &live.run.bounded {
                        Some(_) => File::create(&chrome_path).and_then(|f| chrome_of_parts(&parts, BufWriter::new(f))),
                        None => Err(std::io::Error::other("the native profile it is made from could not be written")),
                    };
                    match written {
                        Ok(()) => files.push(chrome_path),
                        Err(e) => fail(&mut errors, format!("{} not written: {e}", chrome_path.display())),
                    }
                }
                if config.writes(Format::Native) {
                    files.extend(parts);
                } else if let Some(bounded) = live.run.bounded.as_mut() {
                    parts.iter().for_each(|p| drop(std::fs::remove_file(p)));
                    bounded.kept.clear();
                }
                live.aggregator.summary(&live.catalog, live.run, config.top)
            }
        };
        summary
            .run
            .warnings
            .extend(errors.iter().map(|e| stageprof_model::Warning::OutputFailed { problem: e.clone() }));
        if config.writes(Format::Summary) {
            let path = dir.join("summary.json");
            match std::fs::write(&path, summary_json(&summary)) {
                Ok(()) => files.push(path),
                Err(e) => fail(&mut errors, format!("cannot write {}: {e}", path.display())),
            }
        }
        #[cfg(feature = "html")]
        if config.writes(Format::Html) {
            let path = dir.join("report.html");
            let page = render_html(&summary);
            match std::fs::write(&path, page) {
                Ok(()) => files.push(path),
                Err(e) => fail(&mut errors, format!("cannot write {}: {e}", path.display())),
            }
        }
        if config.writes(Format::Table) {
            let stderr = std::io::stderr();
            let mut text = render_table(&summary, &TableOptions::for_output(stderr.is_terminal()));
            for f in &files {
                text.push_str(&format!("wrote {}\n", f.display()));
            }
            let _ = stderr.lock().write_all(text.as_bytes());
        }
        Report { summary: Some(summary), files, errors }
    }
}

#[cfg(all(test, not(feature = "report")))]
mod record_only_tests {
    use stageprof_model::{Catalog, CounterSample, ProfileSink, Span, SpanKind};

    use crate::{Config, Format, Profiler};

    #[derive(Default)]
    struct Count {
        stages: u64,
        frames: u64,
    }

    impl ProfileSink for Count {
        fn span(&mut self, span: &Span, _: &Catalog) {
            match span.kind {
                SpanKind::Stage => self.stages += 1,
                SpanKind::Frame => self.frames += 1,
            }
        }
        fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
    }

    #[test]
    fn a_record_only_build_writes_the_native_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::default().formats, vec![Format::Native]);
        let p = Profiler::start(Config { output_dir: dir.path().to_path_buf(), ..Config::default() });
        for _ in 0..100 {
            let _f = p.frame();
            for _ in 0..10 {
                let _s = p.stage("work");
            }
        }
        let report = p.finish();
        let native = dir.path().join("profile.stgp");
        assert_eq!(report.files, vec![native.clone()]);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let mut count = Count::default();
        let file = std::io::BufReader::new(std::fs::File::open(native).unwrap());
        stageprof_model::ingest::read_native(file, &mut count).unwrap();
        assert_eq!((count.frames, count.stages), (100, 1000));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the native file");
    }
}
