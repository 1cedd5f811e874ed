//! A bounded native file (`max_disk_mb`): the run's statistics are the same
//! as an unbounded run of the same work, while the raw events on disk stay
//! under the bound and the summary says which were kept.

use std::collections::BTreeMap;
use std::path::Path;

use stageprof::{Config, Format, GpuTrace, Profiler, Summary};
use stageprof_model::ingest::native_input::read_native_parts;
use stageprof_model::ingest::read_native;
use stageprof_model::native::{Chunk, NativeReader};
use stageprof_model::wire::{decode, Record, TickScale};
use stageprof_model::Warning;

#[global_allocator]
static ALLOC: stageprof::TrackingAllocator = stageprof::TrackingAllocator::system();

const FRAMES: u64 = 150;
const CALLS_PER_FRAME: u64 = 1000;

fn config(dir: &Path, max_disk_mb: Option<u64>) -> Config {
    Config {
        output_dir: dir.to_path_buf(),
        formats: vec![Format::Native, Format::Summary, Format::Chrome],
        gpu: GpuTrace::Off,
        rss_sample_ms: 0,
        max_disk_mb,
        ..Config::default()
    }
}

/// The same work each time: frames of `outer` calls, each holding an
/// `inner` call that allocates a known buffer, and a counter a frame.
fn run(dir: &Path, max_disk_mb: Option<u64>) -> Summary {
    let p = Profiler::start(config(dir, max_disk_mb));
    for frame in 0..FRAMES {
        let _frame = p.frame();
        for i in 0..CALLS_PER_FRAME {
            let _outer = p.stage("outer");
            let _inner = p.stage("inner");
            let buffer = vec![1u8; 1000 + (i % 7) as usize];
            std::hint::black_box(&buffer);
        }
        p.counter("frame number", frame as f64);
    }
    p.finish().summary.expect("a summary")
}

/// What must not depend on where the raw events went: per stage, its calls,
/// threads, allocations, memory figures and calls in each of the first frames.
fn figures(s: &Summary) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .stages
        .iter()
        .map(|st| {
            let per_frame = st.per_frame.as_ref().map(|f| f.calls);
            let figures = (
                st.calls,
                st.threads,
                st.allocs,
                st.alloc_bytes,
                st.host_mem_peak_bytes,
                st.host_mem_net_bytes,
                per_frame,
            );
            (st.path.join("/"), format!("{figures:?}"))
        })
        .collect();
    out.insert("(frames)".into(), format!("{} {}", s.frames.count, s.frames.sampled));
    let counters: Vec<(String, u64, f64, f64)> =
        s.counters.iter().map(|c| (c.name.clone(), c.samples, c.min, c.max)).collect();
    out.insert("(counters)".into(), format!("{counters:?}"));
    out
}

#[test]
fn a_bounded_run_keeps_every_figure_and_only_some_raw_events() {
    let (plain_dir, bounded_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = run(plain_dir.path(), None);
    let bounded = run(bounded_dir.path(), Some(1));

    assert_eq!(figures(&bounded), figures(&plain));
    let outer = bounded.stages.iter().find(|st| st.path == ["outer"]).unwrap();
    assert_eq!(outer.calls, FRAMES * CALLS_PER_FRAME);
    assert!(plain.run.bounded.is_none());

    // The unbounded file is larger than the bound many times over; the bounded
    // run's parts on disk are the kept ones, under the bound (a part may run
    // past its share by what the collector wrote since it last looked).
    let plain_bytes = std::fs::metadata(plain_dir.path().join("profile.stgp")).unwrap().len();
    let kept = bounded.run.bounded.as_ref().expect("what was kept");
    assert_eq!(kept.limit_bytes, 1 << 20);
    assert!(plain_bytes > 4 * kept.limit_bytes, "{plain_bytes} bytes unbounded");
    let mut on_disk: Vec<String> = std::fs::read_dir(bounded_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".stgp"))
        .collect();
    on_disk.sort_by_key(|p| p.rsplit('.').nth(1).unwrap().parse::<u64>().unwrap());
    let listed: Vec<String> = kept.kept.iter().map(|p| p.path.clone()).collect();
    assert_eq!(on_disk, listed);
    let disk: u64 = kept.kept.iter().map(|p| std::fs::metadata(&p.path).unwrap().len()).sum();
    assert_eq!(disk, kept.kept.iter().map(|p| p.bytes).sum::<u64>());
    assert!(disk <= kept.limit_bytes + kept.limit_bytes / 4, "{disk} bytes on disk");
    assert!(kept.parts_written > kept.kept.len() as u64, "parts were dropped: {kept:?}");
    // The newest parts are kept: the last one ends with the run.
    let newest = kept.kept.last().unwrap();
    assert!(
        newest.end_ns >= kept.kept[0].end_ns && newest.path.ends_with(&format!(".{}.stgp", kept.parts_written - 1))
    );

    // Each kept part reads on its own, says what it is, and holds only some of the calls.
    let numbers: Vec<u64> = kept.kept.iter().map(|p| p.path.rsplit('.').nth(1).unwrap().parse().unwrap()).collect();
    let mut calls_in_parts = 0;
    for (part, &number) in kept.kept.iter().zip(&numbers) {
        let mut agg = stageprof_analysis::Aggregator::default();
        let p = read_native(std::fs::File::open(&part.path).unwrap(), &mut agg).unwrap();
        assert!(p.run.warnings.contains(&Warning::BoundedParts { parts: vec![number] }), "{:?}", p.run.warnings);
        let s = agg.summary(&p.catalog, p.run, 3);
        calls_in_parts += s.stages.iter().find(|st| st.path == ["outer"]).map_or(0, |st| st.calls);
    }
    assert!(calls_in_parts > 0 && calls_in_parts < outer.calls, "{calls_in_parts}");

    // Read together, in order, the kept parts are one profile: one call for
    // every begin of `outer` they hold (counted here from the raw records),
    // calls open where a part was not kept closed there, none spanning a gap.
    let files: Vec<std::fs::File> = kept.kept.iter().map(|p| std::fs::File::open(&p.path).unwrap()).collect();
    let mut agg = stageprof_analysis::Aggregator::default();
    let together = read_native_parts(files, &mut agg).unwrap();
    assert!(together.run.warnings.contains(&Warning::BoundedParts { parts: numbers.clone() }));
    assert!(!together.run.warnings.iter().any(|w| matches!(w, Warning::UnmatchedStageEnds { .. })));
    let outer_id = (0..together.catalog.name_count() as u32).find(|&i| together.catalog.name(i) == "outer").unwrap();
    // Each part's time range (as the summary lists it) holds its records' times.
    let mut begins = 0;
    for p in &kept.kept {
        let mut reader = NativeReader::new(std::fs::File::open(&p.path).unwrap()).unwrap();
        let (mut scale, mut times) = (None, Vec::new());
        while let Ok(Some(chunk)) = reader.next_chunk() {
            match chunk {
                Chunk::Meta(meta) => {
                    let num = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.parse::<u64>().unwrap());
                    if let (Some(ticks_per_second), Some(start_ticks)) = (num("ticks_per_second"), num("start_ticks")) {
                        scale = Some(TickScale { ticks_per_second, start_ticks });
                    }
                }
                Chunk::Records { words, .. } => decode(&words, |r| match r {
                    Record::Begin { name, ticks, .. } => {
                        begins += u64::from(name == outer_id);
                        times.push(ticks);
                    }
                    Record::End { ticks, .. } => times.push(ticks),
                    _ => {}
                })
                .unwrap(),
                _ => {}
            }
        }
        let scale = scale.unwrap();
        let (first, last) = (scale.ns(*times.iter().min().unwrap()), scale.ns(*times.iter().max().unwrap()));
        assert!(p.start_ns <= first && last <= p.end_ns, "{p:?} holds records from {first} to {last} ns");
    }
    let s = agg.summary(&together.catalog, together.run, 3);
    let read_outer = s.stages.iter().find(|st| st.path == ["outer"]).unwrap();
    assert_eq!(read_outer.calls, begins);
    let gaps = numbers.windows(2).filter(|w| w[1] != w[0] + 1).count() as u64;
    assert!(read_outer.unfinished <= gaps + 1, "{} unfinished, {gaps} gaps", read_outer.unfinished);
    assert!(read_outer.call.max_ns <= outer.call.max_ns, "a call spans a gap: {:?}", read_outer.call);

    // The summary says it; the Chrome trace holds the kept events.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bounded_dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["raw_events_kept"]["parts"].as_array().unwrap().len(), kept.kept.len());
    assert!(json["raw_events_kept"].is_object() && json["stages"][0]["calls"] == outer.calls);
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bounded_dir.path().join("trace.json")).unwrap()).unwrap();
    let outer_events = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["name"] == "outer").count() as u64;
    assert!(outer_events > 0 && outer_events < outer.calls, "{outer_events}");
    #[cfg(feature = "html")]
    assert!(stageprof_render::render_html(&bounded).contains(&format!(
        "<dt>raw events kept</dt><dd>{} of {} parts",
        kept.kept.len(),
        kept.parts_written
    )));
    let table = stageprof_render::render_table(&bounded, &stageprof_render::TableOptions::plain());
    assert!(
        table.contains(&format!("raw events kept (max_disk_mb): {} of {} parts", kept.kept.len(), kept.parts_written)),
        "{table}"
    );
}

#[test]
fn a_bound_says_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let zero = Config { max_disk_mb: Some(0), ..config(dir.path(), None) };
    assert!(zero.validate("test").unwrap_err().to_string().contains("max_disk_mb"));
    if cfg!(feature = "cuda") {
        let kernels = Config { gpu: GpuTrace::Kernels, ..config(dir.path(), Some(8)) };
        let e = kernels.validate("test").unwrap_err().to_string();
        assert!(e.contains("gpu = \"events\""), "{e}");
        let events = Config { gpu: GpuTrace::Events, ..config(dir.path(), Some(8)) };
        assert!(events.validate("test").is_ok());
    }
}

/// Profiles an earlier run left in the directory are replaced, so that the
/// parts on disk are this run's; parts of two runs read together are refused.
#[test]
fn an_earlier_runs_profiles_are_replaced_and_runs_never_mix() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(second.path().join("profile.999.stgp"), b"an earlier run's part").unwrap();
    std::fs::write(second.path().join("profile.stgp"), b"an earlier unbounded run").unwrap();
    std::fs::write(second.path().join("profile.notes.stgp"), b"not stageprof's").unwrap();
    let runs = [run(first.path(), Some(1)), run(second.path(), Some(1))];
    let mut left: Vec<String> = std::fs::read_dir(second.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".stgp"))
        .collect();
    left.sort();
    let mut kept: Vec<String> = runs[1]
        .run
        .bounded
        .as_ref()
        .unwrap()
        .kept
        .iter()
        .map(|p| p.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    kept.push("profile.notes.stgp".into());
    kept.sort();
    assert_eq!(left, kept);

    let part = |run: &Summary, i: usize| std::fs::File::open(&run.run.bounded.as_ref().unwrap().kept[i].path).unwrap();
    let mixed =
        read_native_parts(vec![part(&runs[0], 0), part(&runs[1], 1)], &mut stageprof_analysis::Aggregator::default());
    let e = mixed.err().expect("parts of two runs are refused").to_string();
    assert!(e.contains("is of another run than part 0"), "{e}");
}
