//! The heartbeat's figures for `/metrics` and `/v1/stats`: counters bumped
//! on the check path (atomics only, nothing to lock) and a plain snapshot
//! struct for whoever renders them.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (ms) of the check-latency histogram's buckets; a last
/// implicit bucket takes everything slower.
pub const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

#[derive(Default)]
pub struct Counters {
    checks: AtomicU64,
    failed: AtomicU64,
    latency_sum_ms: AtomicU64,
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
}

impl Counters {
    pub fn record(&self, latency_ms: u64, passed: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !passed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&le| latency_ms <= le)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Buckets are read before the count: `record` bumps the count first, so
    /// the snapshot never shows more bucketed checks than counted ones.
    fn latency(&self) -> LatencyHistogram {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS_MS
            .iter()
            .zip(&self.buckets)
            .map(|(&le_ms, count)| {
                cumulative += count.load(Ordering::Relaxed);
                Bucket {
                    le_ms,
                    count: cumulative,
                }
            })
            .collect();
        LatencyHistogram {
            buckets,
            count: self.checks.load(Ordering::Relaxed),
            sum_ms: self.latency_sum_ms.load(Ordering::Relaxed),
        }
    }
}

/// The heartbeat's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatStats {
    pub monitors: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub unknown: u64,
    /// Checks finished since start, and how many of them failed.
    pub checks: u64,
    pub checks_failed: u64,
    pub checks_in_flight: u64,
    pub max_in_flight: u64,
    pub check_latency: LatencyHistogram,
}

/// Check latency as a Prometheus-style histogram: cumulative bucket counts,
/// plus count and sum (ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyHistogram {
    pub buckets: Vec<Bucket>,
    pub count: u64,
    pub sum_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub le_ms: u64,
    pub count: u64,
}

impl HeartbeatStats {
    pub(super) fn new(
        counters: &Counters,
        health: [u64; 3],
        in_flight: usize,
        max_in_flight: usize,
    ) -> Self {
        let [unknown, healthy, unhealthy] = health;
        let check_latency = counters.latency();
        HeartbeatStats {
            monitors: unknown + healthy + unhealthy,
            healthy,
            unhealthy,
            unknown,
            checks_failed: counters.failed.load(Ordering::Relaxed),
            // One read of the check count, shared with the histogram, so the two always agree.
            checks: check_latency.count,
            checks_in_flight: in_flight as u64,
            max_in_flight: max_in_flight as u64,
            check_latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let counters = Counters::default();
        for (ms, passed) in [(3, true), (40, true), (40, false), (20_000, false)] {
            counters.record(ms, passed);
        }
        let stats = HeartbeatStats::new(&counters, [1, 2, 0], 0, 8);
        assert_eq!(
            (stats.checks, stats.checks_failed, stats.monitors),
            (4, 2, 3)
        );
        let h = &stats.check_latency;
        assert_eq!((h.count, h.sum_ms), (4, 20_083));
        let at = |le| h.buckets.iter().find(|b| b.le_ms == le).map(|b| b.count);
        assert_eq!(
            (at(5), at(25), at(50), at(10000)),
            (Some(1), Some(1), Some(3), Some(3))
        );
    }
}
