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

/// The report of `trace`, probed in the browser.
fn probe_report(trace: &Path) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_stageprof"))
        .args(["report", trace.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    let head = format!("<head><script>{}</script>", include_str!("browser/probe_head.js"));
    let tail = format!("<script>{}</script></body>", include_str!("browser/probe_tail.js"));
    let probed = page.replacen("<head>", &head, 1).replacen("</body>", &tail, 1);
    let probed_path = dir.path().join("probed.html");
    std::fs::write(&probed_path, probed).unwrap();
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
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
    let probe = probe_report(&fixture("training.pt.trace.json.gz"));
    assert_eq!(probe["errors"], serde_json::json!([]), "the page raised errors");

    let charts = probe["charts"].as_array().unwrap();
    let ids: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["time-share", "cpu-gpu", "memory", "memory", "timeline", "frames"]);
    // Seven stages that are not derived views, each with a visible bar
    // (the CPU/GPU chart has a GPU segment for the six that launched work).
    assert_eq!(charts[0]["bars"], 7);
    assert_eq!(charts[1]["bars"], 13);
    // Host and GPU memory: each of the trace's 6 host and 450 CUDA memory
    // events (fewer than the 4096 kept), plus the peak's marker.
    assert_eq!(charts[2]["points"], 6 + 1);
    assert_eq!(charts[3]["points"], 450 + 1);
    assert_eq!(charts[5]["points"], 3, "one point per frame");

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
