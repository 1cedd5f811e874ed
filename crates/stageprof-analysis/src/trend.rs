//! Change points in a series of runs: where a figure (a stage's time per
//! call, say) shifted and stayed shifted.
//!
//! At each run, the median of the `window` runs before is compared with the
//! median of the `window` from it on. A shift counts when it is at least
//! `min_shift_pct` of the level before and more than three robust standard
//! deviations (1.4826 × the median absolute deviation) of either window, so
//! a lone outlier, which moves neither median, is never one. Of neighbouring
//! candidates the one where the windows' means differ most is kept: the step.

/// A run where the level changed.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangePoint {
    /// Index of the first run at the new level.
    pub index: usize,
    /// Median of the window before and of the window from `index` on.
    pub before: f64,
    /// Median of the runs after it.
    pub after: f64,
}

impl ChangePoint {
    /// The shift in percent of the level before.
    pub fn shift_pct(&self) -> f64 {
        100.0 * (self.after / self.before - 1.0)
    }
}

/// Runs where the median of `window` runs on either side moved by at least `min_shift_pct` and beyond the noise.
pub fn change_points(series: &[f64], window: usize, min_shift_pct: f64) -> Vec<ChangePoint> {
    let w = window.max(2);
    if series.len() < 2 * w {
        return Vec::new();
    }
    let mut candidates: Vec<(ChangePoint, f64)> = Vec::new();
    for i in w..=series.len() - w {
        let (a, b) = (&series[i - w..i], &series[i..i + w]);
        let (before, after) = (median(a), median(b));
        let noise = 1.4826 * mad(a, before).max(mad(b, after));
        let shift = (after - before).abs();
        if before > 0.0 && 100.0 * shift / before >= min_shift_pct && shift > 3.0 * noise {
            // Medians decide whether; means say where (they move most at the step itself).
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            candidates.push((ChangePoint { index: i, before, after }, (mean(b) - mean(a)).abs()));
        }
    }
    // Keep the largest of each run of candidates closer than a window apart.
    let mut out: Vec<(ChangePoint, f64)> = Vec::new();
    for (c, shift) in candidates {
        match out.last_mut() {
            Some((last, last_shift)) if c.index - last.index < w => {
                if shift > *last_shift {
                    *last = c;
                    *last_shift = shift;
                }
            }
            _ => out.push((c, shift)),
        }
    }
    out.into_iter().map(|(c, _)| c).collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn mad(v: &[f64], m: f64) -> f64 {
    median(&v.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values around `level`, ±1% in a fixed pattern.
    fn level(n: usize, level: f64) -> Vec<f64> {
        (0..n).map(|i| level * (1.0 + 0.01 * ((i * 7 % 5) as f64 - 2.0) / 2.0)).collect()
    }

    #[test]
    fn a_step_is_found_where_it_happened() {
        let series = [level(20, 100.0), level(15, 120.0)].concat();
        let points = change_points(&series, 5, 5.0);
        assert_eq!(points.len(), 1, "{points:?}");
        assert_eq!(points[0].index, 20);
        assert!((points[0].shift_pct() - 20.0).abs() < 2.0, "{points:?}");
    }

    #[test]
    fn noise_and_a_lone_outlier_are_not_change_points() {
        let mut series = level(40, 100.0);
        series[17] = 400.0;
        assert!(change_points(&series, 5, 5.0).is_empty());
        assert!(change_points(&level(3, 1.0), 5, 5.0).is_empty(), "too short");
    }

    #[test]
    fn a_small_real_shift_below_the_threshold_is_left() {
        let series = [level(20, 100.0), level(20, 103.0)].concat();
        assert!(change_points(&series, 5, 5.0).is_empty());
        assert_eq!(change_points(&series, 5, 2.0).len(), 1);
    }
}
