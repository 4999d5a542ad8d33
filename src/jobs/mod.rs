//! Sync jobs: the hub is the one place a long-running sync's state lives.
//! A backend worker runs the sync and reports to the hub; the hub keeps the
//! job in the store's [`JobStore`](crate::store::JobStore) role, prevents a
//! second running job of the same kind, cancels, fails jobs whose worker
//! went silent, re-runs failed ones with backoff and publishes every state
//! change as `sync_progress` (coalesced) on the snapshot's `jobs` section.
//!
//! - `status`: the one status vocabulary and its input aliases;
//! - `rules`: the job's life as pure functions (start, report, cancel,
//!   stale, retry schedule, re-run);
//! - `view`: the job as shown, pages and statistics;
//! - `coalesce`: at most one progress event per job per 250 ms;
//! - `service`: read → rule → compare-and-set → publish, and the sweeper.
//!
//! The lifecycle is drawn in docs/JOBS.md.

mod coalesce;
mod rules;
mod service;
mod status;
mod view;

#[cfg(test)]
mod tests;

pub use coalesce::{Coalescer, Offer, WINDOW};
pub use rules::{
    DEFAULT_STALE_AFTER_MS, JITTER, Job, ProgressReport, Refusal, RetryPolicy, StartRequest,
    check_kind, valid_id,
};
pub use service::{Clock, JobError, Jobs, ListQuery, SWEEP_EVERY, system_clock};
pub use status::{ACCEPTED, Status};
pub use view::{Durations, JobPage, JobStats, JobView, LastSuccess, Progress, percentile, stats};
