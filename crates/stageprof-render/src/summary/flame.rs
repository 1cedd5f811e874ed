//! The flame graph of the HTML report: the stage tree as an icicle, one
//! box per stage path, as wide as its wall time summed over calls, its
//! nested stages below it. Laid out here; the page's script only zooms
//! (by the boxes' numeric `data-` attributes) and searches their text.

use std::fmt::Write;

use stageprof_analysis::{StageStats, Summary};

use crate::svg::escape;
use crate::units::{display_path, duration};

/// Height of one row of boxes, in pixels.
const ROW_PX: usize = 20;

/// Where one stage's box goes: its row and its extent as fractions of the graph's width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FlameBox {
    pub stage: usize,
    pub row: usize,
    pub x: f64,
    pub w: f64,
}

/// One box per stage, in the stages' (tree) order. Top-level stages share
/// the width by wall time; a stage's nested stages share its width, scaled
/// down together where their calls ran on several threads and add up to
/// more than the stage's own wall time.
pub(crate) fn layout(stages: &[StageStats]) -> Vec<FlameBox> {
    let parents = parents(stages);
    let mut nested_wall = vec![0u64; stages.len()];
    let mut top_wall = 0u64;
    for (i, st) in stages.iter().enumerate() {
        match parents[i] {
            Some(p) => nested_wall[p] = nested_wall[p].saturating_add(st.wall_ns),
            None => top_wall = top_wall.saturating_add(st.wall_ns),
        }
    }
    let mut next_x = vec![0.0f64; stages.len()];
    let mut top_x = 0.0;
    let mut boxes: Vec<FlameBox> = Vec::with_capacity(stages.len());
    for (i, st) in stages.iter().enumerate() {
        let b = match parents[i] {
            None => {
                let w = st.wall_ns as f64 / top_wall.max(1) as f64;
                top_x += w;
                FlameBox { stage: i, row: 0, x: top_x - w, w }
            }
            Some(p) => {
                let parent = boxes[p];
                let room = stages[p].wall_ns.max(nested_wall[p]).max(1) as f64;
                let w = parent.w * st.wall_ns as f64 / room;
                let x = parent.x + next_x[p];
                next_x[p] += w;
                FlameBox { stage: i, row: parent.row + 1, x, w }
            }
        };
        boxes.push(b);
    }
    boxes
}

/// Each stage's parent in the tree order: the nearest earlier stage of smaller depth still open.
fn parents(stages: &[StageStats]) -> Vec<Option<usize>> {
    let mut open: Vec<usize> = Vec::new();
    stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            while open.last().is_some_and(|&p| stages[p].depth >= st.depth) {
                open.pop();
            }
            let parent = open.last().copied();
            open.push(i);
            parent
        })
        .collect()
}

/// The body of the `flame` section: the search, and the boxes of `s`'s stages.
pub(crate) fn flame_graph(page: &mut String, s: &Summary) {
    page.push_str("<div class=\"flame-controls\"><input id=\"flame-search\" type=\"search\" placeholder=\"highlight stages by name\"> <button id=\"flame-reset\">show all</button> <span id=\"flame-found\"></span></div>");
    let boxes = layout(&s.stages);
    let rows = boxes.iter().map(|b| b.row + 1).max().unwrap_or(1);
    let top_wall: u64 = s.stages.iter().filter(|st| st.depth == 0).map(|st| st.wall_ns).sum();
    let _ = write!(page, "<div id=\"flame-graph\" class=\"flame\" style=\"height:{}px\">", rows * ROW_PX);
    for b in &boxes {
        let st = &s.stages[b.stage];
        let mut tip = format!(
            "{}\nwall {} ({:.1}% of the top-level stages'), self {}, {} calls",
            display_path(&st.path, " / "),
            duration(st.wall_ns),
            100.0 * st.wall_ns as f64 / top_wall.max(1) as f64,
            duration(st.self_ns),
            st.calls
        );
        let gpu_share = st.gpu_work().map(|g| {
            let _ = write!(tip, "; GPU busy {}", duration(g.busy_ns));
            (100.0 * g.busy_ns as f64 / st.wall_ns.max(1) as f64).min(100.0)
        });
        let _ = write!(
            page,
            "<div class=\"fb r{}\" data-x=\"{:.6}\" data-w=\"{:.6}\" style=\"left:{:.4}%;width:{:.4}%;top:{}px\" title=\"{}\"><span>{}</span>",
            b.row % 4,
            b.x,
            b.w,
            100.0 * b.x,
            100.0 * b.w,
            b.row * ROW_PX,
            escape(&tip),
            escape(&st.name)
        );
        if let Some(pct) = gpu_share {
            let _ = write!(page, "<i style=\"width:{pct:.1}%\"></i>");
        }
        page.push_str("</div>");
    }
    page.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, depth: u32, wall_ns: u64) -> StageStats {
        StageStats { name: name.into(), path: vec![name.into()], depth, wall_ns, ..StageStats::default() }
    }

    #[test]
    fn boxes_nest_under_their_parents_by_wall_time() {
        // a (60) { b (30) { c (10) }, d (20) }, e (40); f's nested stages add up to more than f.
        let stages = [
            stage("a", 0, 60),
            stage("b", 1, 30),
            stage("c", 2, 10),
            stage("d", 1, 20),
            stage("e", 0, 40),
            stage("f", 1, 10),
            stage("g", 2, 15),
            stage("h", 2, 5),
        ];
        let boxes = layout(&stages);
        let got: Vec<(usize, f64, f64)> = boxes.iter().map(|b| (b.row, b.x, b.w)).collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let want = [
            (0, 0.0, 0.6),
            (1, 0.0, 0.3),
            (2, 0.0, 0.1),
            (1, 0.3, 0.2),
            (0, 0.6, 0.4),
            (1, 0.6, 0.1),
            // g and h (20 in all) share f's 0.1 by 15:5.
            (2, 0.6, 0.075),
            (2, 0.675, 0.025),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!(g.0 == w.0 && close(g.1, w.1) && close(g.2, w.2), "{got:?}");
        }
    }
}
