//! Latency histograms (wait: ready → reserved; run: reserved → ACK/NACK) with fixed log-scale bounds that
//! every queue and every server shares, so buckets add up across queues and nodes (Prometheus sums them).
//!
//! Written here rather than taken from `hdrhistogram`: that crate sizes buckets by precision, not by fixed
//! bounds, and its buckets would not line up with a Prometheus histogram's `le` labels.

/// Upper bounds in ms (1-2-5 steps from 1 ms to 50,000 s, then one day); one more bucket holds the rest.
pub const BOUNDS_MS: [u64; 25] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 86_400_000,
];
/// Buckets: one per bound and one above the last.
pub const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// Counts and the sum stop here: every encoding carries them as i64.
pub const CAP: u64 = i64::MAX as u64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Samples per bucket (not cumulative).
    pub counts: [u64; BUCKETS],
    /// Sum of every sample in ms (saturating), for a Prometheus `_sum`.
    pub sum_ms: u64,
}

/// The two histograms of a queue, by the name ONCE.HISTOGRAM takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Wait,
    Run,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Wait => "wait",
            Which::Run => "run",
        }
    }

    pub fn from_name(b: &[u8]) -> Option<Which> {
        match b.to_ascii_lowercase().as_slice() {
            b"wait" => Some(Which::Wait),
            b"run" => Some(Which::Run),
            _ => None,
        }
    }
}

pub fn bucket_of(ms: u64) -> usize {
    BOUNDS_MS.partition_point(|&b| b < ms)
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        let c = &mut self.counts[bucket_of(ms)];
        *c = c.saturating_add(1).min(CAP);
        self.sum_ms = self.sum_ms.saturating_add(ms).min(CAP);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// `(upper bound, samples at or below it)`, the last bound None (+Inf).
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0u64;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                total = total.saturating_add(c);
                (BOUNDS_MS.get(i).copied(), total)
            })
            .collect()
    }

    /// The q-quantile (0 < q ≤ 1) in ms, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does; a quantile in the open top bucket reads as its lower bound. None: no samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BOUNDS_MS[i - 1] };
                let Some(&upper) = BOUNDS_MS.get(i) else { return Some(lower) };
                let into = (rank - below as f64) / c as f64;
                return Some(lower + ((upper - lower) as f64 * into).round() as u64);
            }
            below += c;
        }
        BOUNDS_MS.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_the_bucket_whose_bound_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(86_400_000), BOUNDS_MS.len() - 1);
        assert_eq!(bucket_of(86_400_001), BOUNDS_MS.len());
        assert_eq!(bucket_of(u64::MAX), BOUNDS_MS.len());
    }

    #[test]
    fn cumulative_counts_and_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..90 {
            h.record(7); // bucket (5, 10]
        }
        for _ in 0..10 {
            h.record(1500); // bucket (1000, 2000]
        }
        let c = h.cumulative();
        assert_eq!(c.len(), BUCKETS);
        assert_eq!(c[3], (Some(10), 90));
        assert_eq!(c[10], (Some(2000), 100));
        assert_eq!(c[BUCKETS - 1], (None, 100));
        let p50 = h.quantile(0.5).unwrap();
        assert!((5..=10).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((1000..=2000).contains(&p99), "{p99}");
        assert_eq!(h.sum_ms, 90 * 7 + 10 * 1500);
        h.record(u64::MAX);
        assert_eq!(h.quantile(1.0), Some(86_400_000));
        assert_eq!(h.sum_ms, CAP);
    }
}
