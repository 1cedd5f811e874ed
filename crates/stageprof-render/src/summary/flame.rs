//! The flame graph of the HTML report: the stage tree of each thread as an
//! icicle, one box per stage path and thread, as wide as its wall time on
//! that thread summed over calls, its nested stages below it. Where stages
//! ran on several threads, a first row of boxes names the threads, each as
//! wide as its top-level stages' time. Laid out here; the page's script only
//! zooms (by the boxes' numeric `data-` attributes) and searches their text.

use std::fmt::Write;

use stageprof_analysis::{StageStats, Summary};

use crate::svg::escape;
use crate::units::{display_path, duration};

/// Height of one row of boxes, in pixels.
const ROW_PX: usize = 20;

/// What a box stands for: a thread (by its place in [`Flame::threads`]) or a stage on one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FlameItem {
    Thread(usize),
    Stage { stage: usize, thread: usize },
}

/// Where one box goes: its row and its extent as fractions of the graph's width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FlameBox {
    pub item: FlameItem,
    pub row: usize,
    pub x: f64,
    pub w: f64,
}

/// The boxes, and the threads they are on with each one's top-level wall time.
pub(crate) struct Flame {
    pub threads: Vec<(String, u64)>,
    pub boxes: Vec<FlameBox>,
}

/// A stage's wall time on each thread; a stage that does not say (made by
/// hand, or read from an older summary) ran on one unnamed thread.
fn walls(st: &StageStats) -> impl Iterator<Item = (&str, u64)> {
    let unsplit = st.wall_by_thread.is_empty().then_some(("", st.wall_ns));
    st.wall_by_thread.iter().map(|t| (t.thread.as_str(), t.wall_ns)).chain(unsplit)
}

/// The wall time of `st` on the thread named `thread` (threads of one name together).
fn wall_on(st: &StageStats, thread: &str) -> Option<u64> {
    walls(st).filter(|(t, _)| *t == thread).map(|(_, w)| w).reduce(u64::saturating_add)
}

/// Threads by name with their top-level wall time (of the stages with no
/// parent on that thread), the busiest first.
fn threads(stages: &[StageStats], parents: &[Option<usize>]) -> Vec<(String, u64)> {
    let mut names: Vec<&str> = Vec::new();
    for st in stages {
        for (name, _) in walls(st) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut threads: Vec<(String, u64)> = names
        .into_iter()
        .map(|name| {
            let top = stages.iter().zip(parents).fold(0u64, |total, (st, parent)| {
                let root = parent.is_none_or(|p| wall_on(&stages[p], name).is_none());
                match wall_on(st, name) {
                    Some(w) if root => total.saturating_add(w),
                    _ => total,
                }
            });
            (name.to_owned(), top)
        })
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.1));
    threads
}

/// Each thread's share of the width by its top-level wall time, and within
/// it that thread's stage tree: top-level stages share the thread's width,
/// a stage's nested stages share its width, scaled down together where they
/// add up to more than the stage's own wall time (calls on helper threads
/// nested under it by the trace).
pub(crate) fn layout(stages: &[StageStats]) -> Flame {
    let parents = parents(stages);
    let threads = threads(stages, &parents);
    let all_top = threads.iter().fold(0u64, |a, t| a.saturating_add(t.1)).max(1) as f64;
    let first_row = usize::from(threads.len() > 1);
    let mut boxes: Vec<FlameBox> = Vec::new();
    let mut thread_x = 0.0;
    for (t, (name, top_wall)) in threads.iter().enumerate() {
        let thread_w = *top_wall as f64 / all_top;
        if first_row == 1 {
            boxes.push(FlameBox { item: FlameItem::Thread(t), row: 0, x: thread_x, w: thread_w });
        }
        let wall: Vec<Option<u64>> = stages.iter().map(|st| wall_on(st, name)).collect();
        let mut nested_wall = vec![0u64; stages.len()];
        for (i, w) in wall.iter().enumerate() {
            if let (Some(w), Some(p)) = (w, parents[i]) {
                nested_wall[p] = nested_wall[p].saturating_add(*w);
            }
        }
        // Per stage: its box on this thread, and where its next nested box goes.
        let mut placed: Vec<Option<FlameBox>> = vec![None; stages.len()];
        let mut next_x = vec![0.0f64; stages.len()];
        let mut top_x = thread_x;
        for (i, w) in wall.iter().enumerate() {
            let Some(w) = *w else { continue };
            let b = match parents[i].and_then(|p| placed[p].map(|b| (p, b))) {
                None => {
                    let width = thread_w * w as f64 / (*top_wall).max(1) as f64;
                    top_x += width;
                    FlameBox {
                        item: FlameItem::Stage { stage: i, thread: t },
                        row: first_row,
                        x: top_x - width,
                        w: width,
                    }
                }
                Some((p, parent)) => {
                    let room = wall[p].unwrap_or(0).max(nested_wall[p]).max(1) as f64;
                    let width = parent.w * w as f64 / room;
                    let x = parent.x + next_x[p];
                    next_x[p] += width;
                    FlameBox { item: FlameItem::Stage { stage: i, thread: t }, row: parent.row + 1, x, w: width }
                }
            };
            placed[i] = Some(b);
            boxes.push(b);
        }
        thread_x += thread_w;
    }
    Flame { threads, boxes }
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
    let flame = layout(&s.stages);
    let rows = flame.boxes.iter().map(|b| b.row + 1).max().unwrap_or(1);
    let all_top = flame.threads.iter().fold(0u64, |a, t| a.saturating_add(t.1)).max(1);
    let share = |ns: u64| 100.0 * ns as f64 / all_top as f64;
    let _ = write!(page, "<div id=\"flame-graph\" class=\"flame\" style=\"height:{}px\">", rows * ROW_PX);
    for b in &flame.boxes {
        let (class, name, tip, gpu_share) = match b.item {
            FlameItem::Thread(t) => {
                let (name, top) = &flame.threads[t];
                let tip =
                    format!("thread {name}\ntop-level stages {} ({:.1}% of all threads')", duration(*top), share(*top));
                ("thread", name.as_str(), tip, None)
            }
            FlameItem::Stage { stage, thread } => {
                let st = &s.stages[stage];
                let thread = &flame.threads[thread].0;
                let here = wall_on(st, thread).unwrap_or(0);
                let path = display_path(&st.path, " / ");
                let all = format!("self {}, {} calls", duration(st.self_ns), st.calls);
                let mut tip = match flame.threads.len() {
                    1 => format!("{path}\nwall {} ({:.1}% of the top-level stages'), {all}", duration(here), share(here)),
                    _ => format!(
                        "{path} on {thread}\nwall {} here ({:.1}% of all threads' top-level stages); on all threads: wall {}, {all}",
                        duration(here),
                        share(here),
                        duration(st.wall_ns)
                    ),
                };
                let gpu_share = st.gpu_work().map(|g| {
                    let _ = write!(tip, "; GPU busy {}", duration(g.busy_ns));
                    (100.0 * g.busy_ns as f64 / st.wall_ns.max(1) as f64).min(100.0)
                });
                ("stage", st.name.as_str(), tip, gpu_share)
            }
        };
        let _ = write!(
            page,
            "<div class=\"fb {class} r{}\" data-x=\"{:.6}\" data-w=\"{:.6}\" style=\"left:{:.4}%;width:{:.4}%;top:{}px\" title=\"{}\"><span>{}</span>",
            b.row % 4,
            b.x,
            b.w,
            100.0 * b.x,
            100.0 * b.w,
            b.row * ROW_PX,
            escape(&tip),
            escape(name)
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
    use stageprof_analysis::ThreadWall;

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
        let flame = layout(&stages);
        assert_eq!(flame.threads, [(String::new(), 100)]);
        let got: Vec<(usize, f64, f64)> = flame.boxes.iter().map(|b| (b.row, b.x, b.w)).collect();
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

    fn on(name: &str, depth: u32, threads: &[(&str, u64)]) -> StageStats {
        let wall_by_thread: Vec<ThreadWall> =
            threads.iter().map(|&(t, w)| ThreadWall { thread: t.into(), wall_ns: w }).collect();
        StageStats { wall_ns: threads.iter().map(|t| t.1).sum(), wall_by_thread, ..stage(name, depth, 0) }
    }

    #[test]
    fn each_thread_gets_its_own_tree_under_a_row_of_threads() {
        // main: a (30) { b (10) }; worker: a (50) { b (20), c (10) }, d (20 with its parent a absent).
        let stages = [
            on("a", 0, &[("main", 30), ("worker", 50)]),
            on("b", 1, &[("main", 10), ("worker", 20)]),
            on("c", 1, &[("worker", 10)]),
            on("d", 1, &[("helper", 20)]),
        ];
        let flame = layout(&stages);
        // The helper's d has no parent there: it is top-level on its thread.
        assert_eq!(flame.threads, [("worker".to_owned(), 50), ("main".to_owned(), 30), ("helper".to_owned(), 20)]);
        let got: Vec<(FlameItem, usize, f64, f64)> = flame.boxes.iter().map(|b| (b.item, b.row, b.x, b.w)).collect();
        let stage = |stage, thread| FlameItem::Stage { stage, thread };
        let want = [
            (FlameItem::Thread(0), 0, 0.0, 0.5),
            (stage(0, 0), 1, 0.0, 0.5),
            (stage(1, 0), 2, 0.0, 0.2),
            (stage(2, 0), 2, 0.2, 0.1),
            (FlameItem::Thread(1), 0, 0.5, 0.3),
            (stage(0, 1), 1, 0.5, 0.3),
            (stage(1, 1), 2, 0.5, 0.1),
            (FlameItem::Thread(2), 0, 0.8, 0.2),
            (stage(3, 2), 1, 0.8, 0.2),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert!(g.0 == w.0 && g.1 == w.1 && close(g.2, w.2) && close(g.3, w.3), "{got:?}");
        }
    }
}
