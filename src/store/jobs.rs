//! The job role: tracked sync jobs, and the one rule the store itself
//! enforces about them — at most one `running` job per (account, kind).
//!
//! The store does not interpret a job beyond the few fields it indexes
//! (kind, status, version, order, deadline): the rules of a job's life
//! belong to [`crate::jobs`], which reads a job, decides its next state with
//! a pure function and writes it back with [`JobStore::update_job`], a
//! compare-and-set on the job's `version`. Two writers (two requests, a
//! request and a sweeper, two nodes' sweepers) can therefore never both
//! apply a change to the same state: the second finds the version moved
//! and decides again from what the first wrote.

use super::{Idempotency, StoreFuture};
use serde_json::Value;

/// The one status word the store knows: a job stored with it holds its
/// (account, kind) guard.
pub const RUNNING: &str = "running";

/// A job as a store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredJob {
    pub account_id: String,
    pub id: String,
    pub kind: String,
    /// `running` holds the kind's guard; any other word releases it.
    pub status: String,
    /// Bumped by every write; [`JobStore::update_job`] compares it.
    pub version: u64,
    /// Creation time (ms since the Unix epoch): listing order, newest first
    /// (ties broken by id, descending).
    pub created_ms: i64,
    /// When the sweeper must look at the job again (a stale deadline, a due
    /// retry); `None` when never.
    pub deadline_ms: Option<i64>,
    /// Everything else, owned by [`crate::jobs`].
    pub doc: Value,
}

impl StoredJob {
    pub fn is_running(&self) -> bool {
        self.status == RUNNING
    }
}

/// The answer to [`JobStore::start_job`].
#[derive(Clone, Debug, PartialEq)]
pub enum Started {
    /// Stored, and it holds its kind's guard.
    Created(StoredJob),
    /// The `Idempotency-Key` was seen before: the job that request created
    /// (as it is now); nothing new stored.
    Replayed(StoredJob),
    /// Another job of this kind is running: this one; nothing stored.
    Busy(StoredJob),
}

/// The answer to [`JobStore::update_job`].
#[derive(Clone, Debug, PartialEq)]
pub enum Updated {
    /// Written.
    Done,
    /// The stored version is not the expected one: the job as it is now
    /// (`None`: no such job). Nothing written.
    Moved(Option<StoredJob>),
    /// The write would make the job `running` while another job of its kind
    /// runs: that one. Nothing written.
    Busy(StoredJob),
}

/// Which jobs a listing wants; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobQuery {
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Only jobs listed after this one (newest first): the page cursor.
    pub before: Option<String>,
    /// At most this many (`None`: all, for statistics).
    pub limit: Option<usize>,
}

/// Sync jobs, keyed by account and id.
///
/// Ordering: each method is atomic on its own; `start_job` and
/// `update_job` decide the kind's guard in the same atomic step as their
/// write (SQLite: one transaction of the single writer; Redis: one Lua
/// script on the account's slot), so the guard holds across concurrent
/// requests, restarts and nodes. A read started after a write's `Ok` sees it.
/// Durability: `Ok` from a write means it survives a crash of the process,
/// as for [`EventLog::append`](super::EventLog::append).
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job (its status `running`) unless its kind already has
    /// a running job, or `idempotency` names an earlier start.
    /// An idempotency key reused with another fingerprint is
    /// [`StoreError::IdempotencyConflict`](super::StoreError::IdempotencyConflict).
    fn start_job(
        &self,
        job: StoredJob,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Started>;

    /// One job, or `None`.
    fn get_job<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredJob>>;

    /// Replaces the job with `job` only if its stored version is still
    /// `expected_version` (compare-and-set), taking or releasing the kind's
    /// guard as `job.status` says. `job.version` must be greater than
    /// `expected_version`.
    fn update_job(&self, job: StoredJob, expected_version: u64) -> StoreFuture<'_, Updated>;

    /// An account's jobs matching `query`, newest first.
    fn list_jobs<'a>(
        &'a self,
        account_id: &'a str,
        query: &'a JobQuery,
    ) -> StoreFuture<'a, Vec<StoredJob>>;

    /// Jobs of every account whose deadline is at or before `now_ms`, at
    /// most `limit`, earliest deadline first (for the sweeper).
    fn due_jobs(&self, now_ms: i64, limit: usize) -> StoreFuture<'_, Vec<StoredJob>>;
}
