//! Comparing two runs stage by stage: the change in per-call time with a
//! confidence interval, and a verdict that says whether it is beyond noise.
//!
//! A stage's calls are its samples. The change is that of the mean per call
//! (what the stage costs a run), relative to the base. Its 95% interval is a
//! percentile bootstrap over the calls while both sides have between
//! [`BOOTSTRAP_MIN_CALLS`] and [`BOOTSTRAP_MAX_CALLS`]. Below that the
//! percentile bootstrap is known to be too narrow, and Welch's t interval
//! (Student quantiles, Welch-Satterthwaite degrees of freedom) is used; above
//! it, the same interval is the bootstrap's limit, and costs nothing. Several
//! profiles on a side (ranks of one job) are pooled per stage path.

use std::collections::{BTreeMap, BTreeSet};

use crate::figures::{self, FigureValue, StageFigure};
use crate::stats::Samples;
use crate::summary::{PerFrame, StageStats, Summary};

/// Fewer calls than this on either side give no interval.
pub const MIN_CALLS: u64 = 5;
/// Sides the bootstrap resamples: from this many calls...
pub const BOOTSTRAP_MIN_CALLS: usize = 20;
/// ...to this many.
pub const BOOTSTRAP_MAX_CALLS: usize = 2000;
const RESAMPLES: usize = 1000;
/// Two-sided 95%: the normal quantile.
const Z95: f64 = 1.959964;
/// Student's t 97.5% quantiles for 1 to 30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// What is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    /// Wall time per call.
    Wall,
    /// Thread CPU time per call.
    Cpu,
    /// GPU busy time of the work a call launched.
    Gpu,
    /// Wall time of the stage's calls in one frame: the samples are frames,
    /// so a stage called more often (each call as fast) is seen.
    PerFrame,
}

impl Measure {
    /// The measure's name, as the figure it compares is labelled.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Wall => figures::WALL.label,
            Measure::Cpu => figures::CPU.label,
            Measure::Gpu => figures::GPU_BUSY.label,
            Measure::PerFrame => "per frame",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What a change amounts to.
pub enum Verdict {
    /// Faster beyond noise and the smallest change reported.
    Faster,
    /// Slower beyond noise and the smallest change reported.
    Slower,
    /// The interval holds no change, or the change is below the smallest one reported.
    Unchanged,
    /// Too few calls on a side for an interval.
    TooFewCalls,
}

impl Verdict {
    /// The verdict in words.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Unchanged => "unchanged",
            Verdict::TooFewCalls => "too few calls",
        }
    }
}

/// One measure of one stage, base against new.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// What is compared.
    pub measure: Measure,
    /// Calls (samples) in the base run.
    pub base_calls: u64,
    /// Calls (samples) in the new run.
    pub new_calls: u64,
    /// Mean per call in the base run.
    pub base_mean_ns: u64,
    /// Mean per call in the new run.
    pub new_mean_ns: u64,
    /// Change of the mean per call, in percent of the base's.
    pub change_pct: f64,
    /// 95% interval of that change, in percent; `None` with too few calls.
    pub interval_pct: Option<(f64, f64)>,
    /// What the change amounts to.
    pub verdict: Verdict,
    /// For [`Measure::PerFrame`] (whose "calls" are frames): the stage's
    /// mean calls a frame, base and new.
    pub calls_per_frame: Option<(f64, f64)>,
}

impl Change {
    /// Whether a per-frame change comes with a change in calls a frame.
    pub fn calls_changed(&self) -> bool {
        self.calls_per_frame.is_some_and(|(b, n)| (b - n).abs() > 1e-9)
    }
}

/// A memory figure of a stage in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryChange {
    /// The figure's label.
    pub what: &'static str,
    /// In the base run, where measured.
    pub base_bytes: Option<i64>,
    /// In the new run, where measured.
    pub new_bytes: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
/// One stage in both runs.
pub struct StageDiff {
    /// Names from the outermost stage down.
    pub path: Vec<String>,
    /// Stages above it.
    pub depth: u32,
    /// One change per measure both runs have.
    pub changes: Vec<Change>,
    /// Memory figures either run has.
    pub memory: Vec<MemoryChange>,
}

/// The comparison of two runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    /// Stages in both, in the new run's tree order.
    pub stages: Vec<StageDiff>,
    /// Frame duration (wall).
    pub frames: Option<Change>,
    /// The device's busy time in each frame's GPU window (frames as samples).
    pub frames_gpu: Option<Change>,
    /// Stages only the new run has, paths joined by `/`.
    pub added_stages: Vec<String>,
    /// Stages only the base run has.
    pub removed_stages: Vec<String>,
    /// Kernels only the new run launched.
    pub added_kernels: Vec<String>,
    /// Kernels only the base run launched.
    pub removed_kernels: Vec<String>,
    /// Changes below this (percent) were called unchanged.
    pub min_change_pct: f64,
}

#[derive(Clone, Copy, Debug)]
/// How changes are judged.
pub struct DiffOptions {
    /// Changes smaller than this (percent) are "unchanged" even when certain.
    pub min_change_pct: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { min_change_pct: 1.0 }
    }
}

/// Why two runs cannot be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffError {
    /// Not one stage path is in both; the lists are a few of each side's.
    NoStageInCommon {
        /// A few of the base run's stages.
        base: Vec<String>,
        /// A few of the new run's stages.
        new: Vec<String>,
    },
}

impl std::fmt::Display for DiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffError::NoStageInCommon { base, new } => {
                let few = |l: &[String]| if l.is_empty() { "none".to_string() } else { l.join(", ") };
                write!(
                    f,
                    "the two runs have no stage in common (base: {}; new: {}); are they profiles of the same pipeline?",
                    few(base),
                    few(new)
                )
            }
        }
    }
}

impl Diff {
    /// Stage measures slower than `pct` percent with confidence: the lower end of their interval is above it.
    pub fn regressions(&self, pct: f64) -> Vec<(&StageDiff, &Change)> {
        self.stages
            .iter()
            .flat_map(|s| s.changes.iter().map(move |c| (s, c)))
            .filter(|(_, c)| c.verdict == Verdict::Slower && c.interval_pct.is_some_and(|(lo, _)| lo > pct))
            .collect()
    }

    /// For a stage whose wall time per call has too few calls for an
    /// interval (a stage called once a frame, over three frames): its
    /// nested stages whose wall or per-frame time changed with confidence,
    /// which carry the change.
    pub fn carried_by_children(&self, stage: &StageDiff) -> Vec<(&StageDiff, &Change)> {
        let few = stage.changes.iter().any(|c| c.measure == Measure::Wall && c.verdict == Verdict::TooFewCalls);
        if !few {
            return Vec::new();
        }
        let under = |s: &StageDiff| s.path.len() > stage.path.len() && s.path.starts_with(&stage.path);
        self.stages
            .iter()
            .filter(|s| under(s))
            .flat_map(|s| s.changes.iter().map(move |c| (s, c)))
            .filter(|(_, c)| {
                matches!(c.measure, Measure::Wall | Measure::PerFrame)
                    && matches!(c.verdict, Verdict::Slower | Verdict::Faster)
            })
            .collect()
    }

    /// How many stage measures got each verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.stages.iter().flat_map(|s| &s.changes).filter(|c| c.verdict == verdict).count()
    }
}

/// A side's stages pooled by path (several ranks of one job).
#[derive(Default)]
struct Side {
    stages: BTreeMap<Vec<String>, Pooled>,
    /// Paths in the order the first run lists them (tree order).
    order: Vec<Vec<String>>,
    frames: Samples,
    /// Device busy time per frame.
    frames_gpu: Samples,
    kernels: BTreeSet<String>,
}

#[derive(Default)]
struct Pooled {
    depth: u32,
    wall: Samples,
    cpu: Option<Samples>,
    gpu: Option<Samples>,
    per_frame: Option<PerFrame>,
    memory: [Option<i64>; 3],
}

const MEMORY_FIGURES: [&StageFigure; 3] = [&figures::PROCESS_MEM_PEAK, &figures::HOST_MEM_PEAK, &figures::GPU_MEM_PEAK];

fn memory_of(st: &StageStats) -> [Option<i64>; 3] {
    MEMORY_FIGURES.map(|f| {
        f.value(st).map(|v| match v {
            FigureValue::Unsigned(b) => b.min(i64::MAX as u64) as i64,
            FigureValue::Signed(b) => b,
            other => other.as_f64() as i64,
        })
    })
}

fn pool_opt(a: &Option<Samples>, b: &Option<Samples>) -> Option<Samples> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.pool(b)),
        (a, b) => a.clone().or_else(|| b.clone()),
    }
}

impl Side {
    fn of(runs: &[Summary]) -> Side {
        let mut side = Side::default();
        for run in runs {
            for st in run.stages.iter().filter(|s| !s.derived) {
                let pooled = side.stages.entry(st.path.clone()).or_insert_with(|| {
                    side.order.push(st.path.clone());
                    Pooled { depth: st.depth, ..Pooled::default() }
                });
                let p = &st.per_call;
                pooled.wall = pooled.wall.pool(&p.wall);
                pooled.cpu = pool_opt(&pooled.cpu, &p.cpu);
                pooled.gpu = pool_opt(&pooled.gpu, &p.gpu);
                if let Some(f) = &st.per_frame {
                    pooled.per_frame = Some(pooled.per_frame.as_ref().map_or_else(|| f.clone(), |p| p.pool(f)));
                }
                for (m, v) in pooled.memory.iter_mut().zip(memory_of(st)) {
                    *m = (*m).max(v);
                }
            }
            let frames = Samples { stats: run.frames.duration, values: run.frames.durations.clone() };
            side.frames = side.frames.pool(&frames);
            let mut busy = crate::stats::DurationAcc::default();
            for g in run.frames.each.iter().filter_map(|f| f.gpu) {
                busy.record(g.busy_ns);
            }
            side.frames_gpu = side.frames_gpu.pool(&busy.samples());
            side.kernels.extend(run.kernel_totals().into_iter().map(|k| k.name));
        }
        side
    }
}

/// Compares `new` against `base` (each one run, or the ranks of one job).
pub fn diff(base: &[Summary], new: &[Summary], options: DiffOptions) -> Result<Diff, DiffError> {
    let (b, n) = (Side::of(base), Side::of(new));
    let joined = |p: &Vec<String>| p.join("/");
    if !n.order.iter().any(|p| b.stages.contains_key(p)) {
        let few = |s: &Side| s.order.iter().take(5).map(joined).collect();
        return Err(DiffError::NoStageInCommon { base: few(&b), new: few(&n) });
    }
    let mut rng = SplitMix(0x5eed_5eed);
    let mut stages = Vec::new();
    for path in n.order.iter().filter(|p| b.stages.contains_key(*p)) {
        let (old, now) = (&b.stages[path], &n.stages[path]);
        let mut changes = vec![compare(Measure::Wall, &old.wall, &now.wall, options, &mut rng)];
        for (measure, o, w) in [(Measure::Cpu, &old.cpu, &now.cpu), (Measure::Gpu, &old.gpu, &now.gpu)] {
            if let (Some(o), Some(w)) = (o, w) {
                changes.push(compare(measure, o, w, options, &mut rng));
            }
        }
        if let (Some(o), Some(w)) = (&old.per_frame, &now.per_frame) {
            // Called once in every frame on both sides, the frames are the calls: nothing to add.
            if !(o.once_a_frame() && w.once_a_frame()) {
                let c = compare(Measure::PerFrame, &o.time, &w.time, options, &mut rng);
                changes.push(Change { calls_per_frame: Some((o.calls_per_frame(), w.calls_per_frame())), ..c });
            }
        }
        let memory = MEMORY_FIGURES
            .iter()
            .zip(old.memory.iter().zip(&now.memory))
            .filter(|(_, (o, w))| o.is_some() || w.is_some())
            .map(|(f, (&base_bytes, &new_bytes))| MemoryChange { what: f.label, base_bytes, new_bytes })
            .collect();
        stages.push(StageDiff { path: path.clone(), depth: now.depth, changes, memory });
    }
    let frames = (b.frames.stats.count > 0 && n.frames.stats.count > 0)
        .then(|| compare(Measure::Wall, &b.frames, &n.frames, options, &mut rng));
    let frames_gpu = (b.frames_gpu.stats.count > 0 && n.frames_gpu.stats.count > 0)
        .then(|| compare(Measure::Gpu, &b.frames_gpu, &n.frames_gpu, options, &mut rng));
    let only = |a: &Side, other: &Side| -> Vec<String> {
        a.order.iter().filter(|p| !other.stages.contains_key(*p)).map(joined).collect()
    };
    Ok(Diff {
        stages,
        frames,
        frames_gpu,
        added_stages: only(&n, &b),
        removed_stages: only(&b, &n),
        added_kernels: n.kernels.difference(&b.kernels).cloned().collect(),
        removed_kernels: b.kernels.difference(&n.kernels).cloned().collect(),
        min_change_pct: options.min_change_pct,
    })
}

fn compare(measure: Measure, base: &Samples, new: &Samples, options: DiffOptions, rng: &mut SplitMix) -> Change {
    let (b, n) = (&base.stats, &new.stats);
    let base_mean = b.total_ns as f64 / b.count.max(1) as f64;
    let new_mean = n.total_ns as f64 / n.count.max(1) as f64;
    let change_pct = relative_pct(new_mean, base_mean);
    let interval_pct = (b.count >= MIN_CALLS && n.count >= MIN_CALLS && base_mean > 0.0).then(|| {
        let bootstrappable = |s: &Samples| {
            s.values.len() as u64 == s.stats.count
                && (BOOTSTRAP_MIN_CALLS..=BOOTSTRAP_MAX_CALLS).contains(&s.values.len())
        };
        if bootstrappable(base) && bootstrappable(new) {
            bootstrap_interval(&base.values, &new.values, rng)
        } else {
            welch_interval(base, new, base_mean, new_mean)
        }
    });
    let verdict = match interval_pct {
        None => Verdict::TooFewCalls,
        Some((lo, _)) if lo > 0.0 && change_pct >= options.min_change_pct => Verdict::Slower,
        Some((_, hi)) if hi < 0.0 && change_pct <= -options.min_change_pct => Verdict::Faster,
        Some(_) => Verdict::Unchanged,
    };
    Change {
        measure,
        base_calls: b.count,
        new_calls: n.count,
        base_mean_ns: base_mean.round() as u64,
        new_mean_ns: new_mean.round() as u64,
        change_pct,
        interval_pct,
        verdict,
        calls_per_frame: None,
    }
}

fn relative_pct(new: f64, base: f64) -> f64 {
    if base > 0.0 {
        100.0 * (new / base - 1.0)
    } else if new > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Percentile bootstrap of the relative change of the mean.
fn bootstrap_interval(base: &[u64], new: &[u64], rng: &mut SplitMix) -> (f64, f64) {
    let mut mean_of_resample = |v: &[u64]| {
        let sum: u128 = (0..v.len()).map(|_| u128::from(v[rng.below(v.len())])).sum();
        sum as f64 / v.len() as f64
    };
    let mut changes: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let b = mean_of_resample(base);
            relative_pct(mean_of_resample(new), b)
        })
        .collect();
    changes.sort_by(f64::total_cmp);
    let at = |q: f64| changes[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
    (at(0.025), at(0.975))
}

/// Welch's t interval for the difference of means, relative to the base's mean.
fn welch_interval(base: &Samples, new: &Samples, base_mean: f64, new_mean: f64) -> (f64, f64) {
    // Sample variance of the mean: the stats hold the population deviation.
    let var = |s: &Samples| {
        let n = s.stats.count as f64;
        (s.stats.stddev_ns as f64).powi(2) / (n - 1.0)
    };
    let (vb, vn) = (var(base), var(new));
    let se = (vb + vn).sqrt();
    let df = if se > 0.0 {
        (vb + vn).powi(2) / (vb.powi(2) / (base.stats.count as f64 - 1.0) + vn.powi(2) / (new.stats.count as f64 - 1.0))
    } else {
        f64::INFINITY
    };
    let t = t975(df);
    let d = new_mean - base_mean;
    (100.0 * (d - t * se) / base_mean, 100.0 * (d + t * se) / base_mean)
}

/// Student's t 97.5% quantile: the table, then Cornish-Fisher's expansion (within 0.001 past 30).
fn t975(df: f64) -> f64 {
    if df < 30.5 {
        return T975[(df.round().max(1.0) as usize).min(30) - 1];
    }
    let z = Z95;
    z + (z.powi(3) + z) / (4.0 * df) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * df * df)
}

/// SplitMix64: a small, fixed-seed generator, so a diff reads the same every time.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DurationAcc;
    use crate::summary::PerCall;

    fn samples(values: impl IntoIterator<Item = u64>) -> Samples {
        let mut acc = DurationAcc::default();
        values.into_iter().for_each(|v| acc.record(v));
        acc.samples()
    }

    /// A run of one stage `a` whose calls took `values`.
    fn run(path: &str, values: &[u64]) -> Summary {
        let wall = samples(values.iter().copied());
        let mut s = Summary::default();
        s.stages.push(StageStats {
            name: path.into(),
            path: path.split('/').map(str::to_owned).collect(),
            calls: wall.stats.count,
            wall_ns: wall.stats.total_ns,
            call: wall.stats,
            per_call: PerCall { wall, cpu: None, gpu: None },
            ..StageStats::default()
        });
        s
    }

    /// `n` calls around `mean` with a spread of ±5%, deterministic.
    fn noisy(n: usize, mean: u64, seed: u64) -> Vec<u64> {
        let mut rng = SplitMix(seed);
        (0..n).map(|_| mean - mean / 20 + (rng.next() % (mean / 10))).collect()
    }

    #[test]
    fn a_ten_percent_slowdown_is_found_and_noise_is_not() {
        let base = [run("a", &noisy(50, 1_000_000, 1))];
        let slower = [run("a", &noisy(50, 1_100_000, 2))];
        let same = [run("a", &noisy(50, 1_000_000, 3))];
        let d = diff(&base, &slower, DiffOptions::default()).unwrap();
        let c = &d.stages[0].changes[0];
        assert_eq!(c.verdict, Verdict::Slower);
        let (lo, hi) = c.interval_pct.unwrap();
        assert!(lo > 7.0 && hi < 13.0 && lo < c.change_pct && c.change_pct < hi, "{c:?}");
        assert_eq!(d.regressions(5.0).len(), 1);
        assert!(d.regressions(15.0).is_empty(), "not slower beyond 15% with confidence");
        let d = diff(&base, &same, DiffOptions::default()).unwrap();
        assert_eq!(d.stages[0].changes[0].verdict, Verdict::Unchanged);
        assert!(d.regressions(0.0).is_empty());
    }

    #[test]
    fn many_calls_use_the_normal_limit_and_agree_with_the_bootstrap() {
        let (b, n) = (noisy(1500, 1_000_000, 4), noisy(1500, 1_020_000, 5));
        let boot = diff(&[run("a", &b)], &[run("a", &n)], DiffOptions::default()).unwrap().stages[0].changes[0].clone();
        let welch_side = |v: &[u64]| {
            let mut s = samples(v.iter().copied());
            s.values.clear();
            s
        };
        let (wb, wn) = (welch_side(&b), welch_side(&n));
        let welch = compare(Measure::Wall, &wb, &wn, DiffOptions::default(), &mut SplitMix(1));
        let (bl, bh) = boot.interval_pct.unwrap();
        let (wl, wh) = welch.interval_pct.unwrap();
        assert!((bl - wl).abs() < 0.1 && (bh - wh).abs() < 0.1, "bootstrap {bl:.3}..{bh:.3}, welch {wl:.3}..{wh:.3}");
        assert_eq!((boot.verdict, welch.verdict), (Verdict::Slower, Verdict::Slower));
    }

    #[test]
    fn few_calls_get_welchs_t_interval() {
        // Means 12 and 22 ms, sample variances 2.5 ms² each: se 1 ms, 8 degrees of freedom, t 2.306.
        let ms = |v: &[u64]| v.iter().map(|x| x * 1_000_000).collect::<Vec<_>>();
        let (b, n) = (run("a", &ms(&[10, 11, 12, 13, 14])), run("a", &ms(&[20, 21, 22, 23, 24])));
        let d = diff(&[b], &[n], DiffOptions::default()).unwrap();
        let (lo, hi) = d.stages[0].changes[0].interval_pct.unwrap();
        assert!((lo - 100.0 * 7.694 / 12.0).abs() < 0.01 && (hi - 100.0 * 12.306 / 12.0).abs() < 0.01, "{lo} {hi}");
        assert!((t975(1000.0) - 1.9623).abs() < 0.001 && (t975(40.0) - 2.0211).abs() < 0.001);
    }

    #[test]
    fn too_few_calls_give_no_verdict() {
        let d = diff(&[run("a", &[10, 11, 12])], &[run("a", &[20, 21, 22, 23, 24])], DiffOptions::default()).unwrap();
        let c = &d.stages[0].changes[0];
        assert_eq!((c.verdict, c.interval_pct), (Verdict::TooFewCalls, None));
        assert_eq!(c.change_pct, 100.0 * (22.0 / 11.0 - 1.0));
    }

    #[test]
    fn stages_added_removed_and_none_in_common() {
        let base = [run("a", &[1; 10]), run("gone", &[1; 10])];
        let new = [run("a", &[1; 10]), run("a/fresh", &[1; 10])];
        let d = diff(&base, &new, DiffOptions::default()).unwrap();
        assert_eq!(
            (d.added_stages.clone(), d.removed_stages.clone()),
            (vec!["a/fresh".to_string()], vec!["gone".to_string()])
        );
        // Two ranks on a side pool their calls.
        assert_eq!(d.stages[0].changes[0].base_calls, 10);
        let d = diff(&[run("a", &[1; 10]), run("a", &[1; 6])], &new, DiffOptions::default()).unwrap();
        assert_eq!(d.stages[0].changes[0].base_calls, 16);
        let err = diff(&[run("x", &[1; 10])], &[run("y", &[1; 10])], DiffOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the two runs have no stage in common (base: x; new: y); are they profiles of the same pipeline?"
        );
    }
}
