//! Sync jobs in Redis. Per account, under its hash tag (one slot): a hash
//! of job records (id → JSON), a hash of running jobs (kind → id: the
//! guard), a sorted set of ids by creation time (listing order) and one of
//! ids by sweeper deadline. Starts and updates are Lua scripts
//! (`scripts/job_start.lua`, `scripts/job_update.lua`), so the guard is
//! decided in the same atomic step as the write on every node. One key of
//! the deployment, a set of accounts that have jobs, lets the sweeper visit
//! them without `SCAN`.

use super::{RedisStore, conn, keys::AccountKeys};
use crate::store::{
    Idempotency, JobQuery, JobStore, StoreError, StoreFuture, StoredJob,
    jobs::{Started, Updated},
};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::LazyLock;

static START: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/job_start.lua")));
static UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/job_update.lua")));

/// Records read per round trip while filtering a listing.
const LIST_CHUNK: isize = 200;

/// A job as stored in the account's jobs hash.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    kind: String,
    status: String,
    version: u64,
    created_ms: i64,
    deadline_ms: Option<i64>,
    doc: Value,
}

struct JobKeys {
    jobs: String,
    running: String,
    order: String,
    deadlines: String,
}

fn job_keys(k: &AccountKeys) -> JobKeys {
    JobKeys {
        jobs: k.key("jobs"),
        running: k.key("jobs-running"),
        order: k.key("jobs-order"),
        deadlines: k.key("jobs-deadlines"),
    }
}

fn encode(job: &StoredJob) -> String {
    serde_json::to_string(&Record {
        id: job.id.clone(),
        kind: job.kind.clone(),
        status: job.status.clone(),
        version: job.version,
        created_ms: job.created_ms,
        deadline_ms: job.deadline_ms,
        doc: job.doc.clone(),
    })
    .unwrap_or_default()
}

fn decode(account_id: &str, record: &str) -> Result<StoredJob, StoreError> {
    let r: Record = serde_json::from_str(record)
        .map_err(|e| StoreError::Unavailable(format!("a stored job is not readable: {e}")))?;
    Ok(StoredJob {
        account_id: account_id.to_owned(),
        id: r.id,
        kind: r.kind,
        status: r.status,
        version: r.version,
        created_ms: r.created_ms,
        deadline_ms: r.deadline_ms,
        doc: r.doc,
    })
}

fn deadline_arg(job: &StoredJob) -> String {
    job.deadline_ms.map(|d| d.to_string()).unwrap_or_default()
}

fn unexpected(reply: &[String]) -> StoreError {
    StoreError::Unavailable(format!("unexpected reply from a job script: {reply:?}"))
}

impl RedisStore {
    async fn start_job_now(
        &self,
        job: StoredJob,
        idem: Option<Idempotency>,
    ) -> Result<Started, StoreError> {
        self.open_now()?;
        let mut conn = self.conn.clone();
        let k = self.keys.account(&job.account_id);
        let jk = job_keys(&k);
        let idem_key = idem.as_ref().map_or_else(
            || k.key("job-idem"),
            |i| k.key(&format!("job-idem:{}", i.key)),
        );
        let _: () =
            conn::bounded(conn.sadd(self.keys.global("jobs-accounts"), &job.account_id)).await?;
        let reply: Vec<String> = conn::bounded(
            START
                .key(&jk.jobs)
                .key(&jk.running)
                .key(&jk.order)
                .key(&jk.deadlines)
                .key(idem_key)
                .arg(&job.id)
                .arg(&job.kind)
                .arg(encode(&job))
                .arg(job.created_ms)
                .arg(deadline_arg(&job))
                .arg(idem.as_ref().map_or("", |i| i.fingerprint.as_str()))
                .arg(self.retention.idempotency_ttl.as_secs().max(1))
                .invoke_async(&mut conn),
        )
        .await?;
        match reply.as_slice() {
            [word] if word == "created" => Ok(Started::Created(job)),
            [word] if word == "conflict" => Err(StoreError::IdempotencyConflict),
            [word, record] if word == "replayed" => {
                Ok(Started::Replayed(decode(&job.account_id, record)?))
            }
            [word, record] if word == "busy" => Ok(Started::Busy(decode(&job.account_id, record)?)),
            _ => Err(unexpected(&reply)),
        }
    }

    async fn update_job_now(&self, job: StoredJob, expected: u64) -> Result<Updated, StoreError> {
        self.open_now()?;
        let mut conn = self.conn.clone();
        let jk = job_keys(&self.keys.account(&job.account_id));
        let reply: Vec<String> = conn::bounded(
            UPDATE
                .key(&jk.jobs)
                .key(&jk.running)
                .key(&jk.deadlines)
                .arg(&job.id)
                .arg(expected.to_string())
                .arg(encode(&job))
                .arg(&job.kind)
                .arg(if job.is_running() { "1" } else { "0" })
                .arg(deadline_arg(&job))
                .invoke_async(&mut conn),
        )
        .await?;
        match reply.as_slice() {
            [word] if word == "done" => Ok(Updated::Done),
            [word, record] if word == "moved" && record.is_empty() => Ok(Updated::Moved(None)),
            [word, record] if word == "moved" => {
                Ok(Updated::Moved(Some(decode(&job.account_id, record)?)))
            }
            [word, record] if word == "busy" => Ok(Updated::Busy(decode(&job.account_id, record)?)),
            _ => Err(unexpected(&reply)),
        }
    }

    async fn get_job_now(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<StoredJob>, StoreError> {
        self.open_now()?;
        let mut conn = self.conn.clone();
        let jk = job_keys(&self.keys.account(account_id));
        let record: Option<String> = conn::bounded(conn.hget(&jk.jobs, id)).await?;
        record.map(|r| decode(account_id, &r)).transpose()
    }

    async fn list_jobs_now(
        &self,
        account_id: &str,
        query: &JobQuery,
    ) -> Result<Vec<StoredJob>, StoreError> {
        self.open_now()?;
        let mut conn = self.conn.clone();
        let jk = job_keys(&self.keys.account(account_id));
        let mut from: isize = match &query.before {
            Some(before) => {
                let rank: Option<isize> = conn::bounded(conn.zrevrank(&jk.order, before)).await?;
                match rank {
                    Some(rank) => rank + 1,
                    None => return Ok(Vec::new()),
                }
            }
            None => 0,
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut found = Vec::new();
        while found.len() < limit {
            let ids: Vec<String> =
                conn::bounded(conn.zrevrange(&jk.order, from, from + LIST_CHUNK - 1)).await?;
            if ids.is_empty() {
                break;
            }
            from += ids.len() as isize;
            let records: Vec<Option<String>> = conn::bounded(
                redis::cmd("HMGET")
                    .arg(&jk.jobs)
                    .arg(&ids)
                    .query_async(&mut conn),
            )
            .await?;
            for record in records.into_iter().flatten() {
                let job = decode(account_id, &record)?;
                let wanted = query.status.as_ref().is_none_or(|s| *s == job.status)
                    && query.kind.as_ref().is_none_or(|k| *k == job.kind);
                if wanted && found.len() < limit {
                    found.push(job);
                }
            }
        }
        Ok(found)
    }

    async fn due_jobs_now(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredJob>, StoreError> {
        self.open_now()?;
        let mut conn = self.conn.clone();
        let accounts: Vec<String> =
            conn::bounded(conn.smembers(self.keys.global("jobs-accounts"))).await?;
        let mut due = Vec::new();
        for account in accounts {
            let jk = job_keys(&self.keys.account(&account));
            let ids: Vec<String> = conn::bounded(conn.zrangebyscore_limit(
                &jk.deadlines,
                "-inf",
                now_ms,
                0,
                limit as isize,
            ))
            .await?;
            if ids.is_empty() {
                continue;
            }
            let records: Vec<Option<String>> = conn::bounded(
                redis::cmd("HMGET")
                    .arg(&jk.jobs)
                    .arg(&ids)
                    .query_async(&mut conn),
            )
            .await?;
            for record in records.into_iter().flatten() {
                due.push(decode(&account, &record)?);
            }
        }
        due.sort_by_key(|job| job.deadline_ms);
        due.truncate(limit);
        Ok(due)
    }
}

impl JobStore for RedisStore {
    fn start_job(
        &self,
        job: StoredJob,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Started> {
        Box::pin(self.start_job_now(job, idempotency))
    }

    fn get_job<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredJob>> {
        Box::pin(self.get_job_now(account_id, id))
    }

    fn update_job(&self, job: StoredJob, expected_version: u64) -> StoreFuture<'_, Updated> {
        Box::pin(self.update_job_now(job, expected_version))
    }

    fn list_jobs<'a>(
        &'a self,
        account_id: &'a str,
        query: &'a JobQuery,
    ) -> StoreFuture<'a, Vec<StoredJob>> {
        Box::pin(self.list_jobs_now(account_id, query))
    }

    fn due_jobs(&self, now_ms: i64, limit: usize) -> StoreFuture<'_, Vec<StoredJob>> {
        Box::pin(self.due_jobs_now(now_ms, limit))
    }
}
