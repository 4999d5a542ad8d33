//! How jobs are shown: the job as the API answers it and `sync_progress`
//! carries it, a page of the history, and statistics computed from stored
//! jobs (never kept as counters that could drift from them).

use super::{Job, RetryPolicy, Status};
use crate::event::rfc3339;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// `{done, total}`; `total` is null until someone reports it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
}

/// A job as the API answers it; `sync_progress` carries the same fields
/// without `checkpoint` (which only API keys read).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub sync_id: String,
    pub kind: String,
    pub status: Status,
    pub attempt: u32,
    pub progress: Progress,
    #[schema(format = DateTime)]
    pub started_at: String,
    /// The last report (or the start of the current attempt).
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub results: Option<Map<String, Value>>,
    /// While a failed job waits for its next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_retry_at: Option<String>,
    /// True when the hub re-ran this attempt and no worker reported on it yet.
    pub awaiting_worker: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    pub stale_after_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// The last checkpoint a worker reported: where the next attempt resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub checkpoint: Option<Value>,
}

pub fn time_of(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            sync_id: job.sync_id.clone(),
            kind: job.kind.clone(),
            status: job.status,
            attempt: job.attempt,
            progress: Progress {
                done: job.done,
                total: job.total,
            },
            started_at: time_of(job.started_ms),
            updated_at: time_of(job.last_report_ms),
            finished_at: job.finished_ms.map(time_of),
            error: job.error.clone(),
            results: job.results.clone(),
            next_retry_at: job.next_retry_ms.map(time_of),
            awaiting_worker: job.awaiting_worker,
            retry: job.retry.clone(),
            stale_after_ms: job.stale_after_ms,
            metadata: job.metadata.clone(),
            checkpoint: job.checkpoint.clone(),
        }
    }
}

impl JobView {
    /// The `sync_progress` data and the snapshot's `jobs` entry, with the
    /// stored version as `revision`: it orders one job's events, also when
    /// two nodes publish them.
    pub fn event_data(&self, revision: u64) -> Value {
        let mut data = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(fields) = data.as_object_mut() {
            fields.remove("checkpoint");
            fields.insert("revision".into(), revision.into());
        }
        data
    }
}

/// `GET …/syncs`: newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub account_id: String,
    pub syncs: Vec<JobView>,
    /// Pass as `before` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// `p50`/`p95` of completed jobs' durations (start to finish, ms).
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Durations {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// The last completed job of a kind.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastSuccess {
    pub sync_id: String,
    #[schema(format = DateTime)]
    pub finished_at: String,
}

/// `GET …/syncs/stats`, computed from every stored job of the account.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    pub account_id: String,
    pub total: u64,
    /// Jobs by status (every status present, zero included).
    pub by_status: BTreeMap<String, u64>,
    /// Jobs by kind, then by status.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Completed ÷ (completed + failed for good), null when neither; a failed
    /// job waiting for a retry is not counted yet.
    pub success_rate: Option<f64>,
    pub duration_ms: Durations,
    pub last_success: BTreeMap<String, LastSuccess>,
    /// The jobs running now.
    pub running: Vec<JobView>,
}

/// Nearest-rank percentile of ascending `sorted`.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn stats(account_id: &str, jobs: &[Job]) -> JobStats {
    let zero = || -> BTreeMap<String, u64> {
        Status::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect()
    };
    let mut by_status = zero();
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut durations = Vec::new();
    let mut last_success: BTreeMap<String, (i64, &Job)> = BTreeMap::new();
    let mut running = Vec::new();
    for job in jobs {
        *by_status.entry(job.status.as_str().into()).or_default() += 1;
        *by_kind
            .entry(job.kind.clone())
            .or_insert_with(zero)
            .entry(job.status.as_str().into())
            .or_default() += 1;
        match job.status {
            Status::Completed => {
                completed += 1;
                if let Some(finished) = job.finished_ms {
                    durations.push(finished.saturating_sub(job.started_ms).max(0) as u64);
                    let newer = last_success
                        .get(&job.kind)
                        .is_none_or(|(at, _)| finished > *at);
                    if newer {
                        last_success.insert(job.kind.clone(), (finished, job));
                    }
                }
            }
            Status::Failed if job.next_retry_ms.is_none() => failed += 1,
            Status::Running => running.push(JobView::from(job)),
            _ => {}
        }
    }
    durations.sort_unstable();
    JobStats {
        account_id: account_id.to_owned(),
        total: jobs.len() as u64,
        by_status,
        by_kind,
        success_rate: (completed + failed > 0)
            .then(|| completed as f64 / (completed + failed) as f64),
        duration_ms: Durations {
            p50: percentile(&durations, 50.0),
            p95: percentile(&durations, 95.0),
        },
        last_success: last_success
            .into_iter()
            .map(|(kind, (at, job))| {
                (
                    kind,
                    LastSuccess {
                        sync_id: job.sync_id.clone(),
                        finished_at: time_of(at),
                    },
                )
            })
            .collect(),
        running,
    }
}
