//! Several processes of one job (ranks) side by side: per stage, each
//! rank's time, and which rank is slowest, since the slowest one sets the
//! pace of a synchronous job.

use foldhash::{HashMap, HashMapExt};

use crate::summary::Summary;

/// One rank's figures for one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankFigures {
    /// Calls on the rank.
    pub calls: u64,
    /// Wall time on the rank.
    pub wall_ns: u64,
    /// GPU busy time of the stage's work on the rank.
    pub gpu_busy_ns: Option<u64>,
    /// First start to last end of that work.
    pub gpu_span_ns: Option<u64>,
}

/// A stage across ranks.
#[derive(Clone, Debug, PartialEq)]
pub struct RankRow {
    /// Names from the outermost stage down.
    pub path: Vec<String>,
    /// Per rank, in the order given; `None` where the rank has no such stage.
    pub per_rank: Vec<Option<RankFigures>>,
    /// The rank that spent longest in it (GPU span where known, else wall time).
    pub slowest: usize,
    /// Slowest over fastest, among the ranks that ran the stage.
    pub spread: f64,
}

/// Per-stage comparison of several summaries, stages in the first rank's order.
pub fn compare_ranks(ranks: &[Summary]) -> Vec<RankRow> {
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut table: Vec<Vec<Option<RankFigures>>> = Vec::new();
    for (r, s) in ranks.iter().enumerate() {
        for st in &s.stages {
            let row = *index.entry(st.path.clone()).or_insert_with(|| {
                order.push(st.path.clone());
                table.push(vec![None; ranks.len()]);
                order.len() - 1
            });
            table[row][r] = Some(RankFigures {
                calls: st.calls,
                wall_ns: st.wall_ns,
                gpu_busy_ns: st.gpu.map(|g| g.busy_ns),
                gpu_span_ns: st.gpu.map(|g| g.span_ns),
            });
        }
    }
    order
        .into_iter()
        .zip(table)
        .map(|(path, per_rank)| {
            let time = |f: &RankFigures| f.gpu_span_ns.unwrap_or(f.wall_ns);
            let ran: Vec<(usize, u64)> =
                per_rank.iter().enumerate().filter_map(|(r, f)| Some((r, time(f.as_ref()?)))).collect();
            let (slowest, max) = ran.iter().copied().max_by_key(|&(r, t)| (t, std::cmp::Reverse(r))).unwrap_or((0, 0));
            let min = ran.iter().map(|&(_, t)| t).min().unwrap_or(0);
            RankRow { path, per_rank, slowest, spread: max as f64 / min.max(1) as f64 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use stageprof_model::RunInfo;
    use stageprof_model::{Catalog, ProfileSink, Span, SpanFlags, SpanKind, StageMetrics};

    fn summary(stages: &[(&str, u64)]) -> Summary {
        let mut c = Catalog::default();
        let mut agg = Aggregator::default();
        for (i, (name, wall)) in stages.iter().enumerate() {
            c.set_name(i as u32, name);
            let path = c.intern_path(None, i as u32);
            let span = Span {
                thread: 0,
                kind: SpanKind::Stage,
                name: i as u32,
                path: Some(path),
                depth: 0,
                start_ns: 0,
                end_ns: *wall,
                self_ns: *wall,
                frame: None,
                metrics: StageMetrics::default(),
                flags: SpanFlags::default(),
            };
            agg.span(&span, &c);
        }
        agg.summary(&c, RunInfo::default(), 3)
    }

    #[test]
    fn flags_the_slowest_rank_per_stage() {
        let rows = compare_ranks(&[summary(&[("fwd", 100), ("bwd", 300)]), summary(&[("fwd", 150), ("opt", 5)])]);
        let view: Vec<(String, usize, f64, usize)> =
            rows.iter().map(|r| (r.path.join("/"), r.slowest, r.spread, r.per_rank.iter().flatten().count())).collect();
        assert_eq!(view, [("bwd".into(), 0, 1.0, 1), ("fwd".into(), 1, 1.5, 2), ("opt".into(), 1, 1.0, 1)]);
    }
}
