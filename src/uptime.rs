//! The figures dashboards read from a monitor's history: uptime over 24 h,
//! 7 d and 30 d, latency percentiles, and the history itself as the API
//! shows it.
//!
//! Pure functions of what the [`MonitorHistory`](crate::store::MonitorHistory)
//! store returned and of `now`, so every rule (which checks count, how a
//! percentile is picked) is tested here without a clock or a store, and a
//! test of the API can compute the same figures from the checks it caused.
//!
//! Rules: a window holds the checks of `[now - window, now]` and the
//! buckets starting in it; uptime is `100 × passed / checks` (null without
//! checks); latency percentiles are nearest-rank over the checks of the last
//! 24 h that passed (kept one by one there, so they are exact).

use crate::{
    event,
    store::{Bucket, CheckRecord, HistoryRange, Transition},
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// `GET …/monitors/{id}/uptime`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorUptime {
    pub account_id: String,
    pub monitor_id: String,
    /// When the figures were computed (RFC 3339): the windows end here.
    pub at: String,
    /// Percent of checks that passed per window; null when it had no check.
    pub uptime: UptimePercent,
    /// Checks per window.
    pub checks: CheckCounts,
    /// Over the checks of the last 24 h that passed.
    pub latency_ms: LatencyPercentiles,
}

#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct UptimePercent {
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    #[serde(rename = "30d")]
    pub month: Option<f64>,
}

#[derive(Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckCounts {
    #[serde(rename = "24h")]
    pub day: u64,
    #[serde(rename = "7d")]
    pub week: u64,
    #[serde(rename = "30d")]
    pub month: u64,
}

/// Nearest-rank percentiles; null without a passed check.
#[derive(Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LatencyPercentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// `GET …/monitors/{id}/history`: oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorHistoryPage {
    pub account_id: String,
    pub monitor_id: String,
    pub from: String,
    pub to: String,
    /// Checks of the last 24 h (of the monitor's newest check) one by one.
    pub checks: Vec<CheckPoint>,
    /// Older checks, folded into hourly buckets.
    pub buckets: Vec<BucketView>,
    /// Changes of health checks caused.
    pub transitions: Vec<TransitionView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckPoint {
    /// RFC 3339.
    pub at: String,
    /// The check passed.
    pub ok: bool,
    /// The monitor's health after the check.
    #[schema(pattern = "^(unknown|healthy|unhealthy)$")]
    pub health: String,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `health_changed` kind, when this check changed the health.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketView {
    /// Start of the hour (RFC 3339).
    pub start: String,
    pub checks: u64,
    /// Checks that passed.
    pub ok: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub unknown: u64,
    pub transitions: u64,
    pub latency_avg_ms: f64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionView {
    pub at: String,
    #[schema(pattern = "^(status_change|health_change|error_state|recovery)$")]
    pub kind: String,
    #[schema(pattern = "^(unknown|healthy|unhealthy)$")]
    pub health: String,
}

/// `GET …/monitors/stats`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorStats {
    pub account_id: String,
    pub monitors: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub unknown: u64,
    /// Changes of health checks caused in the last 24 h.
    pub transitions_24h: u64,
    /// Checks in the last 24 h.
    pub checks_24h: u64,
}

/// Unix milliseconds as RFC 3339 (the epoch for a time out of range).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    event::rfc3339(t)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Nearest-rank `p`th percentile of `sorted` (ascending).
pub fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// `(passed, checks)` of the window `[now - width, now]`.
fn window(range: &HistoryRange, now_ms: i64, width: i64) -> (u64, u64) {
    let from = now_ms - width;
    let raw = range
        .checks
        .iter()
        .filter(|c| (from..=now_ms).contains(&c.at_ms));
    let (mut ok, mut checks) = raw.fold((0, 0), |(ok, n), c| (ok + u64::from(c.ok), n + 1));
    for b in range
        .buckets
        .iter()
        .filter(|b| (from..=now_ms).contains(&b.start_ms))
    {
        ok += b.ok;
        checks += b.checks;
    }
    (ok, checks)
}

fn percent((ok, checks): (u64, u64)) -> Option<f64> {
    (checks > 0).then(|| 100.0 * ok as f64 / checks as f64)
}

/// The uptime figures of `range` (read for at least the last 30 days) at `now_ms`.
pub fn uptime(
    account_id: &str,
    monitor_id: &str,
    range: &HistoryRange,
    now_ms: i64,
) -> MonitorUptime {
    let [day, week, month] = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS].map(|w| window(range, now_ms, w));
    let mut latencies: Vec<u64> = range
        .checks
        .iter()
        .filter(|c| c.ok && (now_ms - DAY_MS..=now_ms).contains(&c.at_ms))
        .map(|c| c.latency_ms)
        .collect();
    latencies.sort_unstable();
    MonitorUptime {
        account_id: account_id.to_owned(),
        monitor_id: monitor_id.to_owned(),
        at: rfc3339_ms(now_ms),
        uptime: UptimePercent {
            day: percent(day),
            week: percent(week),
            month: percent(month),
        },
        checks: CheckCounts {
            day: day.1,
            week: week.1,
            month: month.1,
        },
        latency_ms: LatencyPercentiles {
            p50: percentile(&latencies, 50),
            p95: percentile(&latencies, 95),
        },
    }
}

/// The history answer for `range` read over `[from_ms, to_ms]`.
pub fn page(
    account_id: &str,
    monitor_id: &str,
    range: HistoryRange,
    from_ms: i64,
    to_ms: i64,
) -> MonitorHistoryPage {
    MonitorHistoryPage {
        account_id: account_id.to_owned(),
        monitor_id: monitor_id.to_owned(),
        from: rfc3339_ms(from_ms),
        to: rfc3339_ms(to_ms),
        checks: range.checks.into_iter().map(check_point).collect(),
        buckets: range.buckets.into_iter().map(bucket_view).collect(),
        transitions: range.transitions.into_iter().map(transition_view).collect(),
    }
}

fn check_point(c: CheckRecord) -> CheckPoint {
    CheckPoint {
        at: rfc3339_ms(c.at_ms),
        ok: c.ok,
        health: c.health,
        latency_ms: c.latency_ms,
        http_status: c.http_status,
        error: c.error,
        transition: c.transition,
    }
}

fn bucket_view(b: Bucket) -> BucketView {
    BucketView {
        start: rfc3339_ms(b.start_ms),
        checks: b.checks,
        ok: b.ok,
        healthy: b.healthy,
        unhealthy: b.unhealthy,
        unknown: b.unknown,
        transitions: b.transitions,
        latency_avg_ms: b.latency_sum as f64 / b.checks.max(1) as f64,
        latency_min_ms: b.latency_min,
        latency_max_ms: b.latency_max,
    }
}

fn transition_view(t: Transition) -> TransitionView {
    TransitionView {
        at: rfc3339_ms(t.at_ms),
        kind: t.kind,
        health: t.health,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(at_ms: i64, ok: bool, latency_ms: u64) -> CheckRecord {
        CheckRecord {
            at_ms,
            ok,
            health: "healthy".into(),
            latency_ms,
            http_status: None,
            error: None,
            transition: None,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let one_to_hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&one_to_hundred, 50), Some(50));
        assert_eq!(percentile(&one_to_hundred, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn windows_count_checks_and_buckets_inside_them() {
        let now = 100 * DAY_MS;
        let range = HistoryRange {
            checks: vec![
                check(now - 2 * HOUR_MS, true, 10),
                check(now - HOUR_MS, false, 500),
                check(now, true, 30),
                check(now + 1, true, 1), // after `now`: in no window
            ],
            buckets: vec![
                Bucket {
                    start_ms: now - 3 * DAY_MS,
                    checks: 6,
                    ok: 3,
                    ..Bucket::default()
                },
                Bucket {
                    start_ms: now - 20 * DAY_MS,
                    checks: 10,
                    ok: 10,
                    ..Bucket::default()
                },
                Bucket {
                    start_ms: now - 31 * DAY_MS,
                    checks: 50,
                    ok: 0,
                    ..Bucket::default()
                },
            ],
            transitions: vec![],
        };
        let figures = uptime("a", "m", &range, now);
        assert_eq!(
            figures.checks,
            CheckCounts {
                day: 3,
                week: 9,
                month: 19
            }
        );
        assert_eq!(figures.uptime.day, Some(100.0 * 2.0 / 3.0));
        assert_eq!(figures.uptime.week, Some(100.0 * 5.0 / 9.0));
        assert_eq!(figures.uptime.month, Some(100.0 * 15.0 / 19.0));
        // Failed checks are left out of latency.
        assert_eq!(
            figures.latency_ms,
            LatencyPercentiles {
                p50: Some(10),
                p95: Some(30)
            }
        );
        let empty = uptime("a", "m", &HistoryRange::default(), now);
        assert_eq!(empty.uptime.day, None);
        assert_eq!(empty.latency_ms.p50, None);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339_ms(1_796_040_000_250), "2026-11-30T12:00:00.25Z");
    }
}
