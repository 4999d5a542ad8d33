//! The embedded store: one SQLite file in WAL mode under `--data-dir`,
//! serving every store role of a single node.
//!
//! All writes (appends, trims, monitor writes) go through one writer thread
//! that drains whatever is waiting and commits it in a single transaction
//! (group commit): one fsync covers the whole batch, so durability costs one
//! disk flush per batch instead of per event. Reads use a small pool of
//! separate connections, which WAL lets run beside the writer.
//!
//! - `schema`: migrations and connection settings;
//! - `writer`: the writer thread, its batches and the feed;
//! - `log`: the [`EventLog`](super::EventLog) role's SQL;
//! - `monitors`: the [`MonitorStore`](super::MonitorStore) role's SQL;
//! - `history`: the [`MonitorHistory`](super::MonitorHistory) role's SQL.
//! - `jobs`: the [`JobStore`](super::JobStore) role's SQL.
//! - leases ([`LeaseStore`](super::LeaseStore)) are kept in memory: one
//!   SQLite file serves one node, the only owner there is, so it is always
//!   granted what it asks for and nothing needs to survive a restart; so
//!   are rate buckets ([`RateStore`](super::RateStore)).
//! - `webhooks`: the webhook registry and outbox roles' SQL (the outbox
//!   rows of an append are written by `log`, in its transaction).

mod history;
mod jobs;
mod log;
mod monitors;
mod schema;
mod webhooks;
mod writer;

use super::{
    Feed, LeaseGrant, LeaseStore, MemoryLeases, MemoryRates, RateStore, StoreError, StoreFuture,
};
use crate::config::Retention;
use rusqlite::Connection;
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::sync::{mpsc, oneshot};
use writer::{WriteOp, Writer};

/// Idle read connections kept open.
const READ_POOL: usize = 8;

pub struct SqliteStore {
    writes: mpsc::Sender<WriteOp>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    /// Set by `close`: reads fail from then on, as writes do.
    closed: AtomicBool,
    leases: MemoryLeases,
    rates: MemoryRates,
}

impl SqliteStore {
    /// Opens (creating and migrating) `data_dir/statushub.db` and starts the
    /// writer thread, which sends every committed event on `feed`.
    pub fn open(data_dir: &Path, retention: Retention, feed: Feed) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("statushub.db");
        let mut conn = schema::open_connection(&path).map_err(unavailable)?;
        schema::migrate(&mut conn).map_err(unavailable)?;
        webhooks::release_leases(&conn).map_err(unavailable)?;
        let writes = Writer::spawn(conn, retention, feed)?;
        Ok(SqliteStore {
            writes,
            readers: Arc::default(),
            path,
            closed: AtomicBool::new(false),
            leases: MemoryLeases::default(),
            rates: MemoryRates::default(),
        })
    }

    /// Commits what the writer holds, checkpoints and stops it; reads and
    /// writes fail from then on (see [`EventLog::close`](super::EventLog::close)).
    async fn close_now(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        match self.submit(WriteOp::Close).await {
            // Already closed (or the writer is gone): nothing left to flush.
            Err(StoreError::Unavailable(_)) => Ok(()),
            other => other,
        }
    }

    /// Queues a write for the writer thread and waits for its answer.
    async fn submit<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteOp,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(op(tx))
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Runs `read` on a pooled read connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("store closed".into()));
        }
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => schema::open_connection(&path)?,
            };
            let result = read(&mut conn);
            let mut idle = pool.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < READ_POOL {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
        .map_err(unavailable)
    }
}

impl LeaseStore for SqliteStore {
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: std::time::Duration,
    ) -> StoreFuture<'a, LeaseGrant> {
        self.leases.acquire_lease(name, owner, ttl)
    }

    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: std::time::Duration,
    ) -> StoreFuture<'a, bool> {
        self.leases.renew_lease(name, owner, ttl)
    }

    fn release_lease<'a>(&'a self, name: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        self.leases.release_lease(name, owner)
    }

    fn lease_holder<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        self.leases.lease_holder(name)
    }
}

impl RateStore for SqliteStore {
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        rate: f64,
        burst: f64,
    ) -> StoreFuture<'a, Option<std::time::Duration>> {
        self.rates.take_token(name, rate, burst)
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
