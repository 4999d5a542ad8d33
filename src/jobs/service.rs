//! The jobs service: the one place a sync's state changes. Every change is
//! read → pure rule ([`super::rules`]) → compare-and-set in the store →
//! `sync_progress` through the coalescer and the hub's one publish path.
//! The sweeper (stale jobs, due retries) is the same loop run on a timer;
//! with several nodes sweeping, the compare-and-set lets exactly one apply
//! each transition.

use super::{
    Job, JobPage, JobStats, JobView, ProgressReport, Refusal, StartRequest, Status,
    coalesce::{Coalescer, Offer, WINDOW},
    rules, view,
};
use crate::{
    hub::{Hub, HubError},
    store::{
        Idempotency, JobQuery, JobStore, StoreError, StoredJob,
        jobs::{Started, Updated},
    },
};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio_util::sync::CancellationToken;

/// Milliseconds since the Unix epoch; injected so tests control time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// How often the server's sweeper looks for stale jobs and due retries.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Jobs one sweep handles at most (the rest wait for the next one).
const SWEEP_BATCH: usize = 256;
/// Compare-and-set rounds before a change gives up (only under extreme
/// contention on one job).
const MAX_ROUNDS: usize = 64;
/// How long a finished job's coalescing slot is kept.
const SLOT_LINGER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no sync {0} in this account")]
    NotFound(String),
    /// Another job of the kind is running: its id.
    #[error("a {kind:?} sync is already running: {id}")]
    InProgress { id: String, kind: String },
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Hub(HubError::Store(e))
    }
}

/// `GET …/syncs` filters.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub kind: Option<String>,
    pub before: Option<String>,
    pub limit: usize,
    /// Only jobs a worker should start now: a re-run attempt no worker has
    /// reported on, or a failed job whose retry time has come.
    pub due: bool,
}

pub struct Jobs {
    store: Arc<dyn JobStore>,
    coalescer: Arc<Coalescer>,
    hub: Arc<Hub>,
    clock: Clock,
}

/// The event that tells backends a retry came due (webhook endpoints
/// subscribed to `sync.retry` or `sync.*` get it as a delivery).
pub const SYNC_RETRY: &str = "sync.retry";

impl Jobs {
    pub fn new(store: Arc<dyn JobStore>, hub: Arc<Hub>, clock: Clock) -> Arc<Jobs> {
        Jobs::with_window(store, hub, clock, WINDOW)
    }

    /// With another coalescing window (tests).
    pub fn with_window(
        store: Arc<dyn JobStore>,
        hub: Arc<Hub>,
        clock: Clock,
        window: Duration,
    ) -> Arc<Jobs> {
        Arc::new(Jobs {
            store,
            coalescer: Coalescer::new(hub.clone(), window),
            hub,
            clock,
        })
    }

    /// Starts a job; `true` with a replayed `Idempotency-Key`.
    pub async fn start(
        &self,
        account_id: &str,
        request: StartRequest,
        idempotency: Option<Idempotency>,
    ) -> Result<(JobView, bool), JobError> {
        let now = (self.clock)();
        let job = request.into_job(rules::new_id(now), now)?;
        match self
            .store
            .start_job(job.to_stored(account_id, 1), idempotency)
            .await?
        {
            Started::Created(_) => {
                self.announce(account_id, &job, 1, true).await;
                Ok((JobView::from(&job), false))
            }
            Started::Replayed(first) => Ok((JobView::from(&parse(&first)?), true)),
            Started::Busy(running) => Err(JobError::InProgress {
                id: running.id,
                kind: running.kind,
            }),
        }
    }

    pub async fn report(
        &self,
        account_id: &str,
        id: &str,
        report: &ProgressReport,
    ) -> Result<JobView, JobError> {
        let (job, _) = self
            .change(account_id, id, |job, now| {
                job.report(report, now, rand::random())
            })
            .await?;
        Ok(JobView::from(&job))
    }

    pub async fn cancel(&self, account_id: &str, id: &str) -> Result<JobView, JobError> {
        let (job, _) = self
            .change(account_id, id, |job, now| job.cancel(now))
            .await?;
        Ok(JobView::from(&job))
    }

    pub async fn get(&self, account_id: &str, id: &str) -> Result<JobView, JobError> {
        match self.store.get_job(account_id, id).await? {
            Some(stored) => Ok(JobView::from(&parse(&stored)?)),
            None => Err(JobError::NotFound(id.to_owned())),
        }
    }

    pub async fn list(&self, account_id: &str, query: ListQuery) -> Result<JobPage, JobError> {
        let store_query = JobQuery {
            status: query.status.map(|s| s.as_str().to_owned()),
            kind: query.kind.clone(),
            before: query.before.clone(),
            // `due` filters here, after the store's filters.
            limit: (!query.due).then_some(query.limit),
        };
        let now = (self.clock)();
        let mut syncs = Vec::new();
        for stored in self.store.list_jobs(account_id, &store_query).await? {
            let job = parse(&stored)?;
            let due = job.awaiting_worker && job.status == Status::Running
                || job.next_retry_ms.is_some_and(|at| at <= now);
            if !query.due || due {
                syncs.push(JobView::from(&job));
            }
            if syncs.len() == query.limit {
                break;
            }
        }
        let next_before = (syncs.len() == query.limit)
            .then(|| syncs.last().map(|j| j.sync_id.clone()))
            .flatten();
        Ok(JobPage {
            account_id: account_id.to_owned(),
            syncs,
            next_before,
        })
    }

    /// Statistics from every stored job of the account.
    pub async fn stats(&self, account_id: &str) -> Result<JobStats, JobError> {
        let stored = self
            .store
            .list_jobs(account_id, &JobQuery::default())
            .await?;
        let jobs: Vec<Job> = stored.iter().filter_map(Job::from_stored).collect();
        Ok(view::stats(account_id, &jobs))
    }

    /// One sweep at the clock's now: stale running jobs fail, due retries
    /// re-run. Returns how many jobs this node changed.
    pub async fn sweep(&self) -> Result<usize, JobError> {
        self.coalescer.prune(SLOT_LINGER);
        let due = self.store.due_jobs((self.clock)(), SWEEP_BATCH).await?;
        let mut changed = 0;
        for stored in due {
            let rule = |job: &Job, now| Ok(job.sweep(now, rand::random()));
            match self.change(&stored.account_id, &stored.id, rule).await {
                Ok((job, true)) => {
                    changed += 1;
                    if job.status == Status::Running && job.awaiting_worker {
                        self.announce_retry(&stored.account_id, &job).await;
                    }
                }
                Ok(_) => {}
                // A due retry whose kind runs another job waits for it.
                Err(JobError::InProgress { .. } | JobError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// Sweeps every `every` until `stop` fires (the server's shutdown token).
    pub async fn run_sweeper(self: Arc<Self>, stop: CancellationToken, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "sync job sweep failed; retrying on the next tick");
            }
        }
    }

    /// Read → rule → compare-and-set, again from the top when another
    /// writer moved the job in between. The rule answers `None` for "no
    /// change", and the job is returned as it is; the flag says whether
    /// this call wrote.
    async fn change(
        &self,
        account_id: &str,
        id: &str,
        rule: impl Fn(&Job, i64) -> Result<Option<Job>, Refusal>,
    ) -> Result<(Job, bool), JobError> {
        for _ in 0..MAX_ROUNDS {
            let Some(stored) = self.store.get_job(account_id, id).await? else {
                return Err(JobError::NotFound(id.to_owned()));
            };
            let job = parse(&stored)?;
            let Some(next) = rule(&job, (self.clock)())? else {
                return Ok((job, false));
            };
            let version = stored.version + 1;
            match self
                .store
                .update_job(next.to_stored(account_id, version), stored.version)
                .await?
            {
                Updated::Done => {
                    self.announce(account_id, &next, version, next.is_status_change(&job))
                        .await;
                    return Ok((next, true));
                }
                Updated::Moved(_) => continue,
                Updated::Busy(running) => {
                    return Err(JobError::InProgress {
                        id: running.id,
                        kind: running.kind,
                    });
                }
            }
        }
        Err(StoreError::Unavailable(format!("sync {id} kept changing; try again")).into())
    }

    /// Hands a stored state to the coalescer. The state is stored either
    /// way; a failed publish is logged (the next change publishes the
    /// latest state again).
    async fn announce(&self, account_id: &str, job: &Job, version: u64, status_change: bool) {
        let offer = Offer {
            account_id: account_id.to_owned(),
            sync_id: job.sync_id.clone(),
            version,
            data: JobView::from(job).event_data(version),
            status_change,
            finished: job.status.is_finished() && job.next_retry_ms.is_none(),
        };
        if let Err(error) = self.coalescer.offer(offer).await {
            tracing::warn!(account = %account_id, sync = %job.sync_id, %error, "sync state stored but its event was not published");
        }
    }
}

impl Jobs {
    /// Publishes `sync.retry` for an attempt the sweeper just re-ran, once
    /// per attempt (its idempotency key), so a subscribed worker starts it;
    /// the checkpoint is not in the event (tabs see it too): the worker
    /// reads it with `GET …/syncs/{id}`. A failure is logged: workers can
    /// still poll `?due=true`.
    async fn announce_retry(&self, account_id: &str, job: &Job) {
        let data = serde_json::json!({
            "syncId": job.sync_id,
            "kind": job.kind,
            "attempt": job.attempt,
            "hasCheckpoint": job.checkpoint.is_some(),
        });
        let Ok(raw) = serde_json::value::to_raw_value(&data) else {
            return;
        };
        let key = format!("{SYNC_RETRY}:{}:{}", job.sync_id, job.attempt);
        let idempotency = Some(Idempotency {
            fingerprint: key.clone(),
            key,
        });
        let published = self
            .hub
            .publish(
                account_id,
                SYNC_RETRY,
                crate::store::Body::Fixed(raw),
                idempotency,
            )
            .await;
        if let Err(error) = published {
            tracing::warn!(account = %account_id, sync = %job.sync_id, %error, "sync.retry not published; workers polling ?due=true still see the attempt");
        }
    }
}

fn parse(stored: &StoredJob) -> Result<Job, JobError> {
    Job::from_stored(stored).ok_or_else(|| {
        StoreError::Unavailable(format!("stored sync {} is not readable", stored.id)).into()
    })
}
