//! Prints what the reader finds in a fixture next to its ground truth.
//! `cargo run -p stageprof-readers --example compare_truth -- inference`

use stageprof_analysis::Aggregator;

fn main() {
    let run = std::env::args().nth(1).unwrap_or("inference".into());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/ground_truth.json")).unwrap()).unwrap();
    let file = std::fs::File::open(format!("{dir}/{run}.pt.trace.json.gz")).unwrap();
    let mut agg = Aggregator::default();
    let p = stageprof_readers::read_profile(file, &mut agg).unwrap();
    let s = agg.summary(&p.catalog, p.run, 3);
    println!("warnings: {:?}", s.run.warnings);
    println!(
        "{:45} {:>5} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "stage", "calls", "span ms", "truth ms", "busy ms", "peak MiB", "truth MiB"
    );
    for st in &s.stages {
        let key = format!("step/{}", st.path.join("/"));
        let t = &truth[&run]["stages"][&key];
        let g = st.gpu.unwrap_or_default();
        println!(
            "{:45} {:>5} {:>10.3} {:>10.3} {:>10.3} {:>12.1} {:>12.1}",
            st.path.join("/"),
            st.calls,
            g.span_ns as f64 / st.calls as f64 / 1e6,
            t["gpu_ms_mean"].as_f64().unwrap_or(f64::NAN),
            g.busy_ns as f64 / st.calls as f64 / 1e6,
            st.gpu_mem_peak_bytes.unwrap_or(0) as f64 / 1048576.0,
            t["peak_bytes_max"].as_f64().unwrap_or(f64::NAN) / 1048576.0
        );
    }
    let f = &s.frames;
    println!(
        "frames {} span mean {:.3} ms truth {:.3}",
        f.count,
        f.gpu_span.map_or(0, |d| d.mean_ns) as f64 / 1e6,
        truth[&run]["stages"]["step"]["gpu_ms_mean"].as_f64().unwrap()
    );
}
