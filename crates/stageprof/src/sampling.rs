//! Which frames are recorded: every Nth, or a fraction spread evenly.

use crate::config::Config;

/// Decides which frames are sampled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampling {
    every: u64,
    fraction: Option<f64>,
}

impl Sampling {
    pub(crate) fn from_config(c: &Config) -> Sampling {
        Sampling { every: u64::from(c.sample_every.max(1)), fraction: c.sample_fraction }
    }

    /// Whether frame `i` (from 0) is recorded; fractions are spread evenly.
    pub(crate) fn sampled(&self, i: u64) -> bool {
        match self.fraction {
            Some(f) => ((i + 1) as f64 * f).floor() > (i as f64 * f).floor(),
            None => i % self.every == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_every_and_fraction() {
        let every = Sampling { every: 3, fraction: None };
        let picked: Vec<u64> = (0..10).filter(|&i| every.sampled(i)).collect();
        assert_eq!(picked, [0, 3, 6, 9]);
        let frac = Sampling { every: 1, fraction: Some(0.25) };
        assert_eq!((0..100).filter(|&i| frac.sampled(i)).count(), 25);
        let all = Sampling { every: 1, fraction: Some(1.0) };
        assert!((0..10).all(|i| all.sampled(i)));
    }
}
