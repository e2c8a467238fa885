//! Durations counted into fixed buckets, for Prometheus histograms in `/metrics`. (The
//! load generator's `load::report::Histogram` is the other kind: fine-grained buckets for
//! exact percentiles.)
//!
//! Invariants: `observe` is a few comparisons and two additions (it runs once per part
//! per client); buckets are cumulative only when rendered; the bucket bounds are fixed at
//! compile time, from 100 µs to 5 s, so what a harness reads is comparable across runs.

/// Upper bounds of the buckets, in microseconds; a last, open bucket (`+Inf`) follows.
pub const BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    5_000_000,
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FixedBuckets {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    counts: [u64; BOUNDS_US.len() + 1],
    sum_us: u64,
}

impl FixedBuckets {
    pub fn observe(&mut self, us: u64) {
        let bucket = BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// `(le, cumulative count)` for each bucket, `le` in seconds as Prometheus writes it.
    pub fn cumulative(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let bounds = BOUNDS_US.iter().map(|&us| format!("{}", us as f64 / 1e6));
        bounds
            .chain(std::iter::once("+Inf".to_string()))
            .zip(self.counts.iter().scan(0, |total, &n| {
                *total += n;
                Some(*total)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_that_holds_it() {
        let mut h = FixedBuckets::default();
        for us in [0, 100, 101, 999, 1_000, 5_000_001] {
            h.observe(us);
        }
        let cumulative: Vec<(String, u64)> = h.cumulative().collect();
        assert_eq!(cumulative[0], ("0.0001".into(), 2)); // 0 and 100: a bound is inclusive
        assert_eq!(cumulative[1], ("0.00025".into(), 3));
        assert_eq!(cumulative[3], ("0.001".into(), 5));
        assert_eq!(cumulative.last(), Some(&("+Inf".into(), 6)));
        assert_eq!(h.count(), 6);
        assert!((h.sum_seconds() - 5.002201).abs() < 1e-9);
    }
}
