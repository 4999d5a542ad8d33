//! The heartbeat's figures for `/metrics` and `/v1/stats`: counters bumped
//! on the check path (atomics only, nothing to lock), a plain snapshot
//! struct for `/v1/stats`, and the heartbeat's own metric families.

use crate::metrics::{Exposition, Families, Histogram, LatencyReport};
use serde::Serialize;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds (seconds) of the check-latency histogram's buckets: 5 ms to
/// 10 s; slower checks are only counted (the +Inf bucket).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Counters {
    failed: AtomicU64,
    /// Counts every finished check.
    latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            failed: AtomicU64::new(0),
            latency: Histogram::new(&LATENCY_BUCKETS),
        }
    }
}

impl Counters {
    pub fn record(&self, latency_ms: u64, passed: bool) {
        if !passed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(Duration::from_millis(latency_ms));
    }

    fn latency(&self) -> LatencyHistogram {
        let report = self.latency.report();
        LatencyHistogram {
            buckets: report
                .buckets
                .iter()
                .map(|b| Bucket {
                    le_ms: (b.le * 1000.0).round() as u64,
                    count: b.count,
                })
                .collect(),
            count: report.count,
            sum_ms: u64::try_from(report.sum.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The heartbeat's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyHistogram {
    pub buckets: Vec<Bucket>,
    pub count: u64,
    pub sum_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = HeartbeatBucket)]
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

impl Families for HeartbeatStats {
    fn families(&self, out: &mut Exposition) {
        out.family(
            "statushub_monitors",
            "gauge",
            "Heartbeat monitors, by health.",
            [
                ("unknown", self.unknown),
                ("healthy", self.healthy),
                ("unhealthy", self.unhealthy),
            ]
            .map(|(health, n)| (format!("health=\"{health}\""), n.to_string())),
        );
        out.family(
            "statushub_monitor_checks_total",
            "counter",
            "Heartbeat checks finished.",
            [(String::new(), self.checks.to_string())],
        );
        out.family(
            "statushub_monitor_checks_failed_total",
            "counter",
            "Heartbeat checks that failed (timeout, refused, unexpected status, ...).",
            [(String::new(), self.checks_failed.to_string())],
        );
        out.family(
            "statushub_monitor_checks_in_flight",
            "gauge",
            "Heartbeat checks running now.",
            [(String::new(), self.checks_in_flight.to_string())],
        );
        let latency = &self.check_latency;
        out.histogram(
            "statushub_monitor_check_duration_seconds",
            "Heartbeat check latency.",
            &LatencyReport {
                count: latency.count,
                sum_seconds: latency.sum_ms as f64 / 1000.0,
                sum: Duration::from_millis(latency.sum_ms),
                buckets: latency
                    .buckets
                    .iter()
                    .map(|b| crate::metrics::Bucket {
                        le: b.le_ms as f64 / 1000.0,
                        count: b.count,
                    })
                    .collect(),
            },
        );
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
