//! The reconstruction check: depth error against the known surface.

/// Error statistics of a reconstruction, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthError {
    /// Reconstructed points held against the surface.
    pub points: usize,
    /// Median depth error.
    pub median_mm: f32,
    /// 90th percentile of the depth error.
    pub p90_mm: f32,
}

/// Median and 90th percentile of absolute errors; `None` without errors.
pub fn depth_error(mut errors: Vec<f32>) -> Option<DepthError> {
    if errors.is_empty() {
        return None;
    }
    errors.sort_by(f32::total_cmp);
    let at = |q: f32| errors[((q * errors.len() as f32).ceil() as usize).clamp(1, errors.len()) - 1];
    Some(DepthError { points: errors.len(), median_mm: at(0.5), p90_mm: at(0.9) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_errors() {
        let e = depth_error((1..=10).map(|v| v as f32).collect()).unwrap();
        assert_eq!((e.points, e.median_mm, e.p90_mm), (10, 5.0, 9.0));
        assert!(depth_error(Vec::new()).is_none());
    }
}
