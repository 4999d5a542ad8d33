//! The rules of a job's life as pure functions of the job, the input and
//! the time: start, report, cancel, going stale, the retry schedule and the
//! re-run of a due retry. The service reads a job, applies one of these and
//! writes the result back with the store's compare-and-set, so the rules
//! never race and are unit-testable without a store or a clock.

use super::status::Status;
use crate::store::StoredJob;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A running job with no report for this long is failed as stale.
pub const DEFAULT_STALE_AFTER_MS: u64 = 5 * 60 * 1000;
const MIN_STALE_AFTER_MS: u64 = 1000;
const MAX_STALE_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;
/// The longest wait before a retry, whatever the schedule says.
pub const MAX_RETRY_DELAY_MS: u64 = 24 * 3600 * 1000;
/// The most a jitter lengthens a retry delay (a fraction of it).
pub const JITTER: f64 = 0.2;
/// Largest count accepted for `done` and `total` (exact in JSON clients).
const MAX_COUNT: u64 = (1 << 53) - 1;

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("this sync was cancelled; stop working on it")]
    Cancelled,
    #[error("this sync has finished ({0}); a report cannot reopen it")]
    Finished(Status),
}

/// `retry` of a start: how often and how soon a failed job is re-run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 to 100).
    pub max_attempts: u32,
    /// Wait before the second attempt (0 to 86400000).
    pub backoff_ms: u64,
    /// Each later wait is this many times the one before (1 to 10).
    pub backoff_multiplier: f64,
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err("retry.maxAttempts must be between 1 and 100".into());
        }
        if self.backoff_ms > MAX_RETRY_DELAY_MS {
            return Err(format!(
                "retry.backoffMs must be at most {MAX_RETRY_DELAY_MS}"
            ));
        }
        if !(1.0..=10.0).contains(&self.backoff_multiplier) {
            return Err("retry.backoffMultiplier must be between 1 and 10".into());
        }
        Ok(())
    }

    /// The wait after attempt `n` (1-based) failed: `backoffMs ×
    /// multiplier^(n-1)`, lengthened by `jitter` (0 to 1) times [`JITTER`]
    /// of itself, capped at [`MAX_RETRY_DELAY_MS`].
    pub fn delay_ms(&self, n: u32, jitter: f64) -> u64 {
        let exponent = n.saturating_sub(1).min(64) as i32;
        let base = self.backoff_ms as f64 * self.backoff_multiplier.powi(exponent);
        let jittered = base * (1.0 + JITTER * jitter.clamp(0.0, 1.0));
        jittered.min(MAX_RETRY_DELAY_MS as f64) as u64
    }
}

/// `POST …/syncs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"kind": "orders-import", "total": 1200,
    "retry": {"maxAttempts": 3, "backoffMs": 30000, "backoffMultiplier": 2}}))]
pub struct StartRequest {
    /// What is synced: 1 to 64 of `a-z A-Z 0-9 _ . : -`.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,64}$")]
    pub kind: String,
    pub total: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub retry: Option<RetryPolicy>,
    /// Default 300000 (5 min); 1000 to 604800000.
    pub stale_after_ms: Option<u64>,
}

/// `POST …/syncs/{id}/progress`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"done": 600, "total": 1200, "results": {"orders": 580, "claims": 20},
    "checkpoint": {"page": 12}}))]
pub struct ProgressReport {
    pub done: Option<u64>,
    pub total: Option<u64>,
    /// A status word or alias (`completed`, `failed`, …).
    pub status: Option<String>,
    pub error: Option<String>,
    /// The worker's counters, kept with the job.
    #[schema(value_type = Option<Object>)]
    pub results: Option<Map<String, Value>>,
    /// Where the worker got to; handed back to the next attempt.
    #[schema(value_type = Option<Object>)]
    pub checkpoint: Option<Value>,
}

/// A job as the hub keeps it (the store's document; times in ms since the
/// Unix epoch). [`super::JobView`] is how it is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub sync_id: String,
    pub kind: String,
    pub status: Status,
    pub attempt: u32,
    pub done: u64,
    pub total: Option<u64>,
    pub started_ms: i64,
    pub attempt_started_ms: i64,
    pub last_report_ms: i64,
    pub finished_ms: Option<i64>,
    pub error: Option<String>,
    pub results: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    pub checkpoint: Option<Value>,
    pub retry: Option<RetryPolicy>,
    pub stale_after_ms: u64,
    /// Set while a failed job waits for its next attempt.
    pub next_retry_ms: Option<i64>,
    /// The hub re-ran this attempt and no worker has reported on it yet.
    pub awaiting_worker: bool,
}

/// A new job id: creation time then randomness, so ids sort by age.
pub fn new_id(now_ms: i64) -> String {
    format!(
        "sync_{:012x}{}",
        now_ms.max(0),
        hex::encode(rand::random::<[u8; 6]>())
    )
}

/// Sync ids as the API accepts them in paths.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Kinds as the API accepts them (also in `?kind=`).
pub fn check_kind(kind: &str) -> Result<(), String> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    if (1..=64).contains(&kind.len()) && kind.bytes().all(plain) {
        Ok(())
    } else {
        Err(format!(
            "kind {kind:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
        ))
    }
}

fn check_counts(done: Option<u64>, total: Option<u64>) -> Result<(), String> {
    for (name, value) in [("done", done), ("total", total)] {
        if value.is_some_and(|v| v > MAX_COUNT) {
            return Err(format!("{name} must be at most {MAX_COUNT}"));
        }
    }
    if let (Some(done), Some(total)) = (done, total)
        && done > total
    {
        return Err(format!("done ({done}) must not exceed total ({total})"));
    }
    Ok(())
}

impl StartRequest {
    /// The new job, or why the request is refused.
    pub fn into_job(self, id: String, now_ms: i64) -> Result<Job, Refusal> {
        check_kind(&self.kind).map_err(Refusal::Invalid)?;
        check_counts(None, self.total).map_err(Refusal::Invalid)?;
        if let Some(retry) = &self.retry {
            retry.validate().map_err(Refusal::Invalid)?;
        }
        let stale_after_ms = self.stale_after_ms.unwrap_or(DEFAULT_STALE_AFTER_MS);
        if !(MIN_STALE_AFTER_MS..=MAX_STALE_AFTER_MS).contains(&stale_after_ms) {
            return Err(Refusal::Invalid(format!(
                "staleAfterMs must be between {MIN_STALE_AFTER_MS} and {MAX_STALE_AFTER_MS}"
            )));
        }
        Ok(Job {
            sync_id: id,
            kind: self.kind,
            status: Status::Running,
            attempt: 1,
            done: 0,
            total: self.total,
            started_ms: now_ms,
            attempt_started_ms: now_ms,
            last_report_ms: now_ms,
            finished_ms: None,
            error: None,
            results: None,
            metadata: self.metadata,
            checkpoint: None,
            retry: self.retry,
            stale_after_ms,
            next_retry_ms: None,
            awaiting_worker: false,
        })
    }
}

impl Job {
    /// When the sweeper must look at the job: a running job's stale
    /// deadline, a waiting retry's time; otherwise never.
    pub fn deadline_ms(&self) -> Option<i64> {
        match self.status {
            Status::Running => Some(
                self.last_report_ms
                    .saturating_add(self.stale_after_ms as i64),
            ),
            Status::Failed => self.next_retry_ms,
            _ => None,
        }
    }

    pub fn to_stored(&self, account_id: &str, version: u64) -> StoredJob {
        StoredJob {
            account_id: account_id.to_owned(),
            id: self.sync_id.clone(),
            kind: self.kind.clone(),
            status: self.status.as_str().to_owned(),
            version,
            created_ms: self.started_ms,
            deadline_ms: self.deadline_ms(),
            doc: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    pub fn from_stored(stored: &StoredJob) -> Option<Job> {
        serde_json::from_value(stored.doc.clone()).ok()
    }

    /// Status or attempt differ: a change tabs always see as its own event.
    pub fn is_status_change(&self, before: &Job) -> bool {
        self.status != before.status || self.attempt != before.attempt
    }

    /// A worker's report. Reports on a cancelled job are refused (so the
    /// worker stops); on a finished one too, unless it repeats the status
    /// the job ended with (a retried request), which changes nothing.
    pub fn report(
        &self,
        report: &ProgressReport,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Option<Job>, Refusal> {
        let status = report
            .status
            .as_deref()
            .map(Status::parse)
            .transpose()
            .map_err(Refusal::Invalid)?;
        if status == Some(Status::Idle) {
            return Err(Refusal::Invalid(
                "a report's status is running, completed, failed or cancelled (or an alias)".into(),
            ));
        }
        check_counts(report.done, report.total).map_err(Refusal::Invalid)?;
        if report.error.as_ref().is_some_and(|e| e.len() > 4096) {
            return Err(Refusal::Invalid("error is longer than 4096 bytes".into()));
        }
        match self.status {
            Status::Cancelled => return Err(Refusal::Cancelled),
            finished if finished.is_finished() => {
                return if status == Some(finished) {
                    Ok(None)
                } else {
                    Err(Refusal::Finished(finished))
                };
            }
            _ => {}
        }
        let mut next = self.clone();
        next.done = report.done.unwrap_or(next.done);
        next.total = report.total.or(next.total);
        check_counts(Some(next.done), next.total).map_err(Refusal::Invalid)?;
        if report.results.is_some() {
            next.results = report.results.clone();
        }
        if report.checkpoint.is_some() {
            next.checkpoint = report.checkpoint.clone();
        }
        if report.error.is_some() {
            next.error = report.error.clone();
        }
        next.last_report_ms = now_ms;
        next.awaiting_worker = false;
        match status {
            None | Some(Status::Running | Status::Idle) => {}
            Some(Status::Completed) => next.finish(Status::Completed, now_ms),
            Some(Status::Cancelled) => next.finish(Status::Cancelled, now_ms),
            Some(Status::Failed) => {
                let error = next.error.take().unwrap_or_else(|| "failed".into());
                next.fail(error, now_ms, jitter);
            }
        }
        Ok(Some(next))
    }

    /// Cancels a running job or a waiting retry. Cancelling a cancelled job
    /// changes nothing; a completed or finally failed one is refused.
    pub fn cancel(&self, now_ms: i64) -> Result<Option<Job>, Refusal> {
        match self.status {
            Status::Cancelled => Ok(None),
            Status::Failed if self.next_retry_ms.is_some() => {
                let mut next = self.clone();
                next.finish(Status::Cancelled, now_ms);
                Ok(Some(next))
            }
            status if status.is_finished() => Err(Refusal::Finished(status)),
            _ => {
                let mut next = self.clone();
                next.finish(Status::Cancelled, now_ms);
                Ok(Some(next))
            }
        }
    }

    /// What the sweeper does at `now_ms`: fail a running job that went
    /// stale, re-run a failed one whose retry is due; `None` when nothing is
    /// due (another node got there first, or a report moved the deadline).
    pub fn sweep(&self, now_ms: i64, jitter: f64) -> Option<Job> {
        match self.status {
            Status::Running => {
                let silent = now_ms.saturating_sub(self.last_report_ms);
                if silent < self.stale_after_ms as i64 {
                    return None;
                }
                let mut next = self.clone();
                let silent = std::time::Duration::from_millis(silent.max(0) as u64);
                next.fail(
                    format!(
                        "stale: no progress for {}",
                        humantime::format_duration(silent)
                    ),
                    now_ms,
                    jitter,
                );
                Some(next)
            }
            Status::Failed if self.next_retry_ms.is_some_and(|at| at <= now_ms) => {
                let mut next = self.clone();
                next.status = Status::Running;
                next.attempt += 1;
                next.attempt_started_ms = now_ms;
                next.last_report_ms = now_ms;
                next.finished_ms = None;
                next.next_retry_ms = None;
                next.error = None;
                next.awaiting_worker = true;
                Some(next)
            }
            _ => None,
        }
    }

    fn finish(&mut self, status: Status, now_ms: i64) {
        self.status = status;
        self.finished_ms = Some(now_ms);
        self.next_retry_ms = None;
    }

    /// Fails the attempt; with attempts left, schedules the next one.
    fn fail(&mut self, error: String, now_ms: i64, jitter: f64) {
        self.finish(Status::Failed, now_ms);
        self.error = Some(error);
        if let Some(retry) = &self.retry
            && self.attempt < retry.max_attempts
        {
            let delay = retry.delay_ms(self.attempt, jitter) as i64;
            self.next_retry_ms = Some(now_ms.saturating_add(delay));
        }
    }
}
