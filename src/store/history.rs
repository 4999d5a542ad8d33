//! The monitor history role: every check result of every monitor, kept for a
//! window (30 days by default) so dashboards can show uptime bars, latency
//! charts and uptime percentages.
//!
//! Storage stays bounded per monitor: checks are kept one by one for
//! [`HistoryPolicy::raw_for`] (24 h), then folded into buckets of
//! [`HistoryPolicy::bucket`] (1 h) that keep counts and latency figures, and
//! buckets older than [`HistoryPolicy::keep`] go. A monitor therefore holds at
//! most its checks of `raw_for + bucket`, `keep / bucket + 1` buckets and
//! [`MAX_TRANSITIONS`] transitions, whatever its interval.
//!
//! The store never reads a clock: every time is the caller's (a check's own
//! time, a read's `now`), so tests can replay forty days in a second.

use super::StoreFuture;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Transitions kept per monitor at most (a flapping endpoint cannot grow
/// its history without bound inside the window either).
pub const MAX_TRANSITIONS: usize = 1000;

/// How long history is kept and when it is downsampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Everything older than this (counted back from the newest check) goes.
    pub keep: Duration,
    /// Checks are kept one by one for this long, then folded into buckets.
    pub raw_for: Duration,
    /// The width of one bucket.
    pub bucket: Duration,
}

impl HistoryPolicy {
    pub const DEFAULT_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

    /// Kept for `keep`, raw for 24 h (or `keep` if shorter), hourly buckets.
    pub fn keeping(keep: Duration) -> Self {
        HistoryPolicy {
            keep,
            raw_for: keep.min(Duration::from_secs(24 * 3600)),
            bucket: Duration::from_secs(3600),
        }
    }

    pub(crate) fn bucket_ms(&self) -> i64 {
        (self.bucket.as_millis() as i64).max(1)
    }

    /// Raw checks before this (for a newest check at `at_ms`) are folded:
    /// whole buckets only, so a bucket is never half raw, half folded.
    pub(crate) fn fold_before(&self, at_ms: i64) -> i64 {
        let b = self.bucket_ms();
        (at_ms - self.raw_for.as_millis() as i64).div_euclid(b) * b
    }

    /// Buckets starting and transitions happening before this go.
    pub(crate) fn drop_before(&self, at_ms: i64) -> i64 {
        at_ms - self.keep.as_millis() as i64
    }
}

impl Default for HistoryPolicy {
    fn default() -> Self {
        HistoryPolicy::keeping(Self::DEFAULT_KEEP)
    }
}

/// One check's result as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// When the check ran, Unix milliseconds.
    pub at_ms: i64,
    /// The check passed (the endpoint answered in time with an expected status).
    pub ok: bool,
    /// The monitor's health after this check (`unknown`, `healthy`, `unhealthy`).
    pub health: String,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `health_changed` kind when this check changed the monitor's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
}

/// The checks of one bucket, folded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Unix milliseconds, a multiple of the bucket width.
    pub start_ms: i64,
    pub checks: u64,
    pub ok: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub unknown: u64,
    pub transitions: u64,
    pub latency_sum: u64,
    pub latency_min: u64,
    pub latency_max: u64,
}

/// A change of health a check caused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub at_ms: i64,
    /// `status_change`, `error_state`, `recovery`, `health_change`.
    pub kind: String,
    /// The health it changed to.
    pub health: String,
}

impl Transition {
    /// The transition a check caused, if any.
    pub fn of(check: &CheckRecord) -> Option<Transition> {
        check.transition.as_ref().map(|kind| Transition {
            at_ms: check.at_ms,
            kind: kind.clone(),
            health: check.health.clone(),
        })
    }
}

/// A monitor's history between two times (both inclusive), oldest first:
/// the checks still kept one by one, the buckets that start in the range,
/// and the transitions. A check is either raw or in a bucket, never both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryRange {
    pub checks: Vec<CheckRecord>,
    pub buckets: Vec<Bucket>,
    pub transitions: Vec<Transition>,
}

/// An account's checks and transitions since a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountCounts {
    pub checks: u64,
    pub transitions: u64,
}

/// Monitor check history, keyed by account and monitor id.
///
/// Ordering: a read started after a `record`'s `Ok` sees it; records of one
/// monitor may arrive out of time order (a record older than the fold point
/// is folded by the next record); checks of equal time read back in the
/// order they were recorded (on Redis: as one node recorded them). Durability: as [`MonitorStore`](super::MonitorStore)
/// — `Ok` means the record survives a crash of the process (SQLite: in the
/// writer's group commit; Redis: as its AOF settings promise).
pub trait MonitorHistory: Send + Sync + 'static {
    /// Keeps one check, then (in the same atomic step) folds checks older
    /// than the policy's raw window into buckets and drops what is past its
    /// `keep`, both counted back from this check's time.
    fn record<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        check: CheckRecord,
        policy: HistoryPolicy,
    ) -> StoreFuture<'a, ()>;

    /// The monitor's history in `[from_ms, to_ms]` (see [`HistoryRange`]),
    /// with at most the newest `limit` checks of the range.
    fn history<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> StoreFuture<'a, HistoryRange>;

    /// Checks still kept one by one and transitions of every monitor of the
    /// account at or after `since_ms` (exact while `since_ms` is inside the
    /// raw window).
    fn account_counts<'a>(
        &'a self,
        account_id: &'a str,
        since_ms: i64,
    ) -> StoreFuture<'a, AccountCounts>;

    /// Drops the monitor's whole history (when it is deleted). Returns
    /// false when it had none.
    fn forget<'a>(&'a self, account_id: &'a str, monitor_id: &'a str) -> StoreFuture<'a, bool>;
}
