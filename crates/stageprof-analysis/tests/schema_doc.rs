//! docs/summary-schema.md documents each per-stage figure as the figure
//! table describes it: same key, type and meaning, nothing left out.

use stageprof_analysis::STAGE_FIGURES;

/// Fields of `stages[]` that are not numbers, written by the summary itself.
const STRUCTURED: [&str; 5] = ["name", "path", "wall_by_thread", "top_kernels", "copies"];

fn stage_rows() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/summary-schema.md")).unwrap();
    let section = doc.split("## `stages[]`").nth(1).expect("a stages[] section").split("\n## ").next().unwrap();
    section.lines().filter(|l| l.starts_with("| `")).map(str::to_owned).collect()
}

#[test]
fn every_stage_figure_is_documented_as_the_figure_table_says() {
    let rows = stage_rows();
    let missing: Vec<String> = STAGE_FIGURES
        .iter()
        .map(|f| format!("| `{}` | {} | {} |", f.key, f.json_type(), f.doc))
        .filter(|row| !rows.contains(row))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/summary-schema.md lacks these rows (or has them worded otherwise):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_schema_documents_no_stage_field_the_summary_lacks() {
    for row in stage_rows() {
        let key = row.trim_start_matches("| `").split('`').next().unwrap();
        assert!(
            STRUCTURED.contains(&key) || STAGE_FIGURES.iter().any(|f| f.key == key),
            "docs/summary-schema.md documents `{key}`, which is no stage figure: {row}"
        );
    }
}
