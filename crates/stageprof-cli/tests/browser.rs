//! The HTML report in a real browser (Debian's chromium, headless): the page
//! of a real PyTorch profile loads without errors, every chart has content,
//! and sorting the stage table keeps each stage under its parent.
//!
//! Scripts injected around the report record errors, click the headers and
//! leave what they found in the DOM, which `chromium --dump-dom` prints.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
        .expect("browser tests need chromium: apt-get install chromium (.ci/run does)")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stageprof-readers/tests/fixtures").join(name)
}

/// The page at `html` (with the probe around it) in the browser, 1,280 pixels wide: what the probe found.
fn probe_page(html: &Path) -> serde_json::Value {
    let page = std::fs::read_to_string(html).unwrap();
    let head = format!("<head><script>{}</script>", include_str!("browser/probe_head.js"));
    let tail = format!("<script>{}</script></body>", include_str!("browser/probe_tail.js"));
    let probed = page.replacen("<head>", &head, 1).replacen("</body>", &tail, 1);
    let probed_path = html.with_extension("probed.html");
    std::fs::write(&probed_path, probed).unwrap();
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--dump-dom"])
        .arg(format!("file://{}", probed_path.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8(out.stdout).unwrap();
    let start = dom.rfind("<pre id=\"probe\">").expect("the probe ran") + "<pre id=\"probe\">".len();
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let json = json.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Runs `stageprof` with `args`, which must succeed.
fn stageprof(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_stageprof")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The report of `profile`, probed in the browser, and its summary by `stageprof report --format json`.
fn probe_report(profile: &Path) -> (serde_json::Value, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    stageprof(&["report", profile.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_stageprof"))
        .args(["report", profile.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    (probe_page(&html), serde_json::from_slice(&out.stdout).unwrap())
}

/// What every page must be: no errors raised, its sections where links
/// point, and no horizontal scrolling at 1,280 pixels.
fn assert_page_fits(probe: &serde_json::Value, sections: &[&str]) {
    assert_eq!(probe["errors"], serde_json::json!([]), "the page raised errors");
    let ids: Vec<&str> = probe["sections"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for id in sections {
        assert!(ids.contains(id), "no section {id} in {ids:?}");
    }
    let [page, view, window] = ["page", "view", "window"].map(|k| probe["scroll"][k].as_u64().unwrap());
    assert_eq!(window, 1280);
    assert!(page <= view, "the page scrolls sideways at 1,280 pixels: {page} wide in {view}");
}

/// One flame box per stage path and thread (`wall_by_thread` in the
/// summary), under a row naming the threads where there are several;
/// clicking a nested box zooms into it (full width, only its ancestors and
/// its subtree shown); "show all" shows every box again; the search marks
/// the boxes named alike.
fn assert_flame_graph(probe: &serde_json::Value, summary: &serde_json::Value) {
    let flame = &probe["flame"];
    let texts = |key: &str| -> Vec<String> {
        let mut v: Vec<String> =
            flame[key].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let mut want_stages: Vec<String> = Vec::new();
    let mut want_threads: Vec<String> = Vec::new();
    for st in summary["stages"].as_array().unwrap() {
        for t in st["wall_by_thread"].as_array().unwrap() {
            want_stages.push(st["name"].as_str().unwrap().to_owned());
            let thread = t["thread"].as_str().unwrap().to_owned();
            if !want_threads.contains(&thread) {
                want_threads.push(thread);
            }
        }
    }
    want_stages.sort();
    want_threads.sort();
    if want_threads.len() == 1 {
        want_threads.clear();
    }
    assert_eq!(texts("stages"), want_stages, "one box per stage path and thread");
    assert_eq!(texts("threads"), want_threads, "a box per thread where there are several");
    let names = texts("names");
    let [left, width] = [0, 1].map(|i| flame["zoomedBox"][i].as_f64().unwrap());
    // Within the graph's one-pixel border.
    assert!(left.abs() < 3e-3 && (width - 1.0).abs() < 3e-3, "the zoomed box fills the graph: {left} {width}");
    let shown = flame["shownZoomed"].as_array().unwrap().len();
    assert!(shown >= 2 && shown < names.len(), "zoomed, {shown} of {} boxes shown", names.len());
    assert_eq!(flame["shownReset"].as_array().unwrap().len(), names.len(), "show all");
    let first = flame["names"][0].as_str().unwrap();
    assert_eq!(flame["searchHits"].as_u64().unwrap() as usize, names.iter().filter(|n| n.contains(first)).count());
}

type Row = (u64, String, f64);

fn rows(v: &serde_json::Value) -> Vec<Row> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_str().unwrap().to_string(), r[2].as_f64().unwrap()))
        .collect()
}

/// The rows as a tree: (outer stage, its nested stages in order).
fn tree(rows: &[Row]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (depth, name, _) in rows {
        match depth {
            0 => out.push((name.clone(), Vec::new())),
            _ => out.last_mut().expect("a nested stage follows its parent").1.push(name.clone()),
        }
    }
    out
}

#[test]
fn report_of_a_pytorch_trace_works_in_chromium() {
    let (probe, summary) = probe_report(&fixture("training.pt.trace.json.gz"));
    assert_page_fits(
        &probe,
        &["overview", "bottlenecks", "flame", "stages", "frames", "memory", "timeline", "kernels"],
    );
    assert_flame_graph(&probe, &summary);
    assert_eq!(probe["moreColumns"]["before"], "none");
    assert_eq!(probe["moreColumns"]["after"], "table-cell");
    assert_eq!(probe["frameBars"], 3, "one bar per frame");

    let charts = probe["charts"].as_array().unwrap();
    let ids: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["time-share", "cpu-gpu", "memory", "memory", "timeline", "frames", "frames"]);
    // Seven stages that are not derived views, each with a visible bar
    // (the CPU/GPU chart has a GPU segment for the six that launched work).
    assert_eq!(charts[0]["bars"], 7);
    assert_eq!(charts[1]["bars"], 13);
    // Host and GPU memory: each of the trace's 6 host and 450 CUDA memory
    // events (fewer than the 4096 kept), plus the peak's marker.
    assert_eq!(charts[2]["points"], 6 + 1);
    assert_eq!(charts[3]["points"], 450 + 1);
    // Three frames, each split into its top-level stages, and each frame's GPU busy.
    assert!(charts[5]["bars"].as_u64().unwrap() >= 3, "{}", charts[5]);
    assert_eq!(charts[6]["bars"], 3);

    // Zooming in twice (each halves the view around its middle) narrows the
    // viewBox to a quarter, centred.
    let view = |v: &serde_json::Value| -> Vec<f64> {
        v["viewBox"].as_str().unwrap().split(' ').map(|n| n.parse().unwrap()).collect()
    };
    let (before, after) = (view(&probe["timeline"]), view(&probe["zoomed"]));
    assert!(probe["timeline"]["rects"].as_u64().unwrap() > 100, "{}", probe["timeline"]);
    assert!((after[2] - before[2] / 4.0).abs() < 1e-6 * before[2], "{before:?} -> {after:?}");
    assert!((after[0] - 3.0 * before[2] / 8.0).abs() < 1e-6 * before[2], "{before:?} -> {after:?}");
    assert_eq!((before[1], before[3]), (after[1], after[3]), "zoom is horizontal only");
    assert!(probe["zoomed"]["range"].as_str().unwrap().contains(" to "));

    let initial = rows(&probe["initial"]);
    assert_eq!(initial.len(), 9);
    let wall_ascending = rows(&probe["wallAscending"]);
    let outer_walls: Vec<f64> = wall_ascending.iter().filter(|r| r.0 == 0).map(|r| r.2).collect();
    assert!(outer_walls.windows(2).all(|w| w[0] <= w[1]), "ascending by wall: {outer_walls:?}");
    assert_ne!(wall_ascending, initial, "sorting reordered the rows");

    let by_name = rows(&probe["nameDescending"]);
    let sorted = tree(&by_name);
    let names: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = names.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names, expected, "descending by name");
    // Sorting never separates a stage from its nested stages.
    let mut before = tree(&initial);
    let mut after = sorted.clone();
    for t in [&mut before, &mut after] {
        t.iter_mut().for_each(|(_, children)| children.sort());
        t.sort();
    }
    assert_eq!(before, after);
}

/// Held while the demo runs or stages spin, so neither blurs the other's times.
static CPU_BOUND: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn report_of_a_demo_profile_works_in_chromium() {
    let busy = CPU_BOUND.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    stageprof(&["demo", "--frames", "3", "--views", "2", "--out", out.to_str().unwrap()]);
    drop(busy);
    let (probe, summary) = probe_report(&out.join("profile.stgp"));
    assert_page_fits(&probe, &["overview", "bottlenecks", "flame", "stages", "frames", "memory", "timeline"]);
    assert_flame_graph(&probe, &summary);
    assert_eq!(probe["frameBars"], 3);
}

#[test]
fn a_diff_page_lists_the_changed_stages_first_in_chromium() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let record = |side: &str, work: Duration| {
        let out = dir.path().join(side);
        let config = stageprof::Config {
            output_dir: out.clone(),
            formats: vec![stageprof::Format::Native],
            ..stageprof::Config::default()
        };
        let p = stageprof::Profiler::start(config);
        for _ in 0..30 {
            let _f = p.frame();
            for (name, d) in [("work", work), ("steady", Duration::from_micros(300))] {
                let _s = p.stage(name);
                let until = Instant::now() + d;
                while Instant::now() < until {}
            }
        }
        p.finish();
        out.join("profile.stgp")
    };
    let busy = CPU_BOUND.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let base = record("base", Duration::from_micros(1000));
    let new = record("new", Duration::from_micros(4000));
    drop(busy);
    let html = dir.path().join("diff.html");
    stageprof(&["diff", base.to_str().unwrap(), new.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let probe = probe_page(&html);
    assert_page_fits(&probe, &["changed", "stages"]);
    let changed = probe["changed"].as_array().unwrap();
    // Four times as long: +300%, far above what noise does to the 300 µs stage.
    assert_eq!(changed[0], serde_json::json!(["work", "wall", "slower"]), "{changed:?}");
}
