//! Latency percentiles in bounded memory.
//!
//! A run may see tens of millions of deliveries; keeping every sample would
//! make the tool's memory grow with the run. This is a log-linear histogram
//! (HdrHistogram's layout): values below 1,024 µs are exact, larger ones keep
//! their top 10 significant bits, so any percentile is within 0.2 % of the
//! true sample while the whole table stays around 140 KB. The maximum is
//! kept exactly.

use serde::{Deserialize, Serialize};

/// Values below this are stored exactly.
const EXACT: u64 = 1024;
/// Sub-buckets per power of two above `EXACT`.
const SUB: u64 = EXACT / 2;
/// Enough powers of two for any u64 (shifts 1 ..= 54).
const BUCKETS: usize = (EXACT + SUB * 54) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

/// p50 / p99 / max of a histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    // `shift` brings v into [SUB, EXACT): its top 10 bits.
    let shift = u64::from(63 - v.leading_zeros()) - 9;
    (EXACT + (shift - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The largest value that lands in bucket `i` (so percentiles never under-report).
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / SUB + 1;
    let mantissa = (i - EXACT) % SUB + SUB;
    // u128: the last bucket's bound is u64::MAX itself.
    ((u128::from(mantissa + 1) << shift) - 1) as u64
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest recorded value v such that at least `p` percent of the
    /// samples are ≤ v (nearest-rank); 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Percentiles {
        Percentiles {
            p50_us: self.percentile(50.0),
            p99_us: self.percentile(99.0),
            max_us: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for v in [
            0,
            1,
            1023,
            1024,
            1025,
            2047,
            2048,
            4095,
            4096,
            1 << 20,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i >= last, "index({v}) = {i} went backwards");
            assert!(i < BUCKETS, "index({v}) = {i} out of range");
            assert!(upper(i) >= v, "upper bound {} below {v}", upper(i));
            last = i;
        }
        assert_eq!(index(1023) + 1, index(1024));
        assert_eq!(index(2047) + 1, index(2048));
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.summary().max_us, 100);
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn nearest_rank_on_tiny_sets() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(99.0), 0, "empty histogram");
        h.record(7);
        assert_eq!(h.percentile(0.0), 7);
        assert_eq!(h.percentile(99.0), 7);
        h.record(3);
        // Two samples: p50 is the first (3), p99 the second (7).
        assert_eq!(h.percentile(50.0), 3);
        assert_eq!(h.percentile(99.0), 7);
    }

    #[test]
    fn large_values_within_relative_error() {
        let mut h = Histogram::default();
        // 1,000 samples spread over 1 ms .. 1 s.
        let samples: Vec<u64> = (1..=1000).map(|i| i * 1000 + i * 7).collect();
        for &v in &samples {
            h.record(v);
        }
        for p in [50.0, 90.0, 99.0, 99.9] {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            let truth = samples[rank - 1] as f64;
            let got = h.percentile(p) as f64;
            assert!(
                got >= truth && (got - truth) / truth < 0.002,
                "p{p}: got {got}, true {truth}"
            );
        }
        assert_eq!(h.summary().max_us, 1_007_000);
    }

    #[test]
    fn merge_adds_counts_and_keeps_max() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 0..50 {
            a.record(v);
        }
        for v in 50..100 {
            b.record(v);
        }
        b.record(5_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert_eq!(a.percentile(50.0), 50);
        assert_eq!(a.summary().max_us, 5_000_000);
    }
}
