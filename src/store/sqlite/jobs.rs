//! The job role on SQLite. Writes join the writer's group commit, so a
//! start's guard check and its insert are one transaction of the single
//! writer: two starts can never both see the kind free. A partial unique
//! index (`jobs_one_running`) states the same rule in the schema. Reads use
//! the read pool.

use super::{SqliteStore, writer::WriteOp};
use crate::store::{
    Idempotency, JobQuery, JobStore, StoreError, StoreFuture, StoredJob,
    jobs::{RUNNING, Started, Updated},
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// A job write, queued for the writer thread.
pub(super) enum JobWrite {
    Start(StoredJob, Option<Idempotency>),
    Update(StoredJob, u64),
}

/// What a job write did.
pub(super) enum JobWritten {
    Started(Started),
    Updated(Updated),
}

impl JobStore for SqliteStore {
    fn start_job(
        &self,
        job: StoredJob,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Started> {
        Box::pin(async move {
            match self
                .submit(|tx| WriteOp::Job(JobWrite::Start(job, idempotency), tx))
                .await?
            {
                JobWritten::Started(started) => Ok(started),
                JobWritten::Updated(_) => Err(StoreError::Unavailable("job write mismatch".into())),
            }
        })
    }

    fn get_job<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredJob>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        Box::pin(self.read(move |conn| read_job(conn, &account_id, &id)))
    }

    fn update_job(&self, job: StoredJob, expected_version: u64) -> StoreFuture<'_, Updated> {
        Box::pin(async move {
            match self
                .submit(|tx| WriteOp::Job(JobWrite::Update(job, expected_version), tx))
                .await?
            {
                JobWritten::Updated(updated) => Ok(updated),
                JobWritten::Started(_) => Err(StoreError::Unavailable("job write mismatch".into())),
            }
        })
    }

    fn list_jobs<'a>(
        &'a self,
        account_id: &'a str,
        query: &'a JobQuery,
    ) -> StoreFuture<'a, Vec<StoredJob>> {
        let (account_id, query) = (account_id.to_owned(), query.clone());
        Box::pin(self.read(move |conn| list(conn, &account_id, &query)))
    }

    fn due_jobs(&self, now_ms: i64, limit: usize) -> StoreFuture<'_, Vec<StoredJob>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE deadline_ms IS NOT NULL AND deadline_ms <= ?1
                 ORDER BY deadline_ms LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms, limit as i64], row_to_job)?;
            rows.collect()
        }))
    }
}

const COLUMNS: &str = "account_id, id, kind, status, version, created_ms, deadline_ms, doc";

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredJob> {
    let doc: String = row.get(7)?;
    Ok(StoredJob {
        account_id: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        status: row.get(3)?,
        version: row.get::<_, i64>(4)? as u64,
        created_ms: row.get(5)?,
        deadline_ms: row.get(6)?,
        // A document that no longer parses reads as null rather than failing
        // every listing of the account; `jobs` reports it.
        doc: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
    })
}

fn read_job(conn: &Connection, account_id: &str, id: &str) -> rusqlite::Result<Option<StoredJob>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE account_id = ?1 AND id = ?2"
    ))?
    .query_row(params![account_id, id], row_to_job)
    .optional()
}

fn running_of(
    tx: &Transaction<'_>,
    account_id: &str,
    kind: &str,
) -> rusqlite::Result<Option<StoredJob>> {
    tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE account_id = ?1 AND kind = ?2 AND status = '{RUNNING}'"
    ))?
    .query_row(params![account_id, kind], row_to_job)
    .optional()
}

fn list(conn: &Connection, account_id: &str, query: &JobQuery) -> rusqlite::Result<Vec<StoredJob>> {
    // The cursor job's (created_ms, id); a cursor that names no job lists nothing.
    let cursor = match &query.before {
        Some(before) => match read_job(conn, account_id, before)? {
            Some(job) => Some((job.created_ms, job.id)),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let (cursor_ms, cursor_id) = cursor.unwrap_or((i64::MAX, String::new()));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs
         WHERE account_id = ?1
           AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR kind = ?3)
           AND (?6 = 0 OR created_ms < ?4 OR (created_ms = ?4 AND id < ?5))
         ORDER BY created_ms DESC, id DESC
         LIMIT ?7"
    ))?;
    let limit = query.limit.map_or(-1, |l| l as i64);
    let rows = stmt.query_map(
        params![
            account_id,
            query.status,
            query.kind,
            cursor_ms,
            cursor_id,
            query.before.is_some() as i64,
            limit
        ],
        row_to_job,
    )?;
    rows.collect()
}

/// One job write inside the batch transaction.
pub(super) fn write_job(
    tx: &Transaction<'_>,
    write: &JobWrite,
    now: i64,
) -> rusqlite::Result<Result<JobWritten, StoreError>> {
    Ok(match write {
        JobWrite::Start(job, idem) => start(tx, job, idem.as_ref(), now)?.map(JobWritten::Started),
        JobWrite::Update(job, expected) => Ok(JobWritten::Updated(update(tx, job, *expected)?)),
    })
}

fn start(
    tx: &Transaction<'_>,
    job: &StoredJob,
    idem: Option<&Idempotency>,
    now: i64,
) -> rusqlite::Result<Result<Started, StoreError>> {
    if let Some(idem) = idem {
        let seen: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT fingerprint, job_id FROM job_idempotency WHERE account_id = ?1 AND key = ?2",
            )?
            .query_row(params![job.account_id, idem.key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((fingerprint, job_id)) = seen {
            if fingerprint != idem.fingerprint {
                return Ok(Err(StoreError::IdempotencyConflict));
            }
            if let Some(first) = read_job(tx, &job.account_id, &job_id)? {
                return Ok(Ok(Started::Replayed(first)));
            }
        }
    }
    if let Some(running) = running_of(tx, &job.account_id, &job.kind)? {
        return Ok(Ok(Started::Busy(running)));
    }
    insert(tx, job)?;
    if let Some(idem) = idem {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO job_idempotency (account_id, key, fingerprint, job_id, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![job.account_id, idem.key, idem.fingerprint, job.id, now])?;
    }
    Ok(Ok(Started::Created(job.clone())))
}

fn insert(tx: &Transaction<'_>, job: &StoredJob) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        job.account_id,
        job.id,
        job.kind,
        job.status,
        job.version as i64,
        job.created_ms,
        job.deadline_ms,
        job.doc.to_string()
    ])?;
    Ok(())
}

fn update(tx: &Transaction<'_>, job: &StoredJob, expected: u64) -> rusqlite::Result<Updated> {
    let current = read_job(tx, &job.account_id, &job.id)?;
    match current {
        Some(current) if current.version == expected => {}
        other => return Ok(Updated::Moved(other)),
    }
    if job.is_running()
        && let Some(running) = running_of(tx, &job.account_id, &job.kind)?
        && running.id != job.id
    {
        return Ok(Updated::Busy(running));
    }
    insert(tx, job)?;
    Ok(Updated::Done)
}
