//! The embedded store: one SQLite file in WAL mode under `--data-dir`.
//!
//! All writes go through one writer thread that drains whatever appends are
//! waiting and commits them in a single transaction (group commit): one fsync
//! covers the whole batch, so durability costs one disk flush per batch
//! instead of per event. Reads use a small pool of separate connections,
//! which WAL lets run beside the writer.

use super::{
    Appended, Body, Draft, EntryChange, Feed, History, Receipt, Section, Snapshot, Store,
    StoreError, StoreFuture, StoredMonitor,
};
use crate::{config::Retention, event::Event};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Value, value::RawValue};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::sync::{mpsc, oneshot};

/// Appends committed together at most; bounds one transaction's latency.
const MAX_BATCH: usize = 512;
/// Idle read connections kept open.
const READ_POOL: usize = 8;

/// Ordered schema migrations; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY,
        head       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE events (
        account_id   TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        id           TEXT    NOT NULL,
        event        TEXT    NOT NULL,
        data         TEXT    NOT NULL,
        published_at TEXT    NOT NULL,
        stored_ms    INTEGER NOT NULL,
        PRIMARY KEY (account_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_age ON events (stored_ms);
    CREATE TABLE entries (
        account_id TEXT    NOT NULL,
        section    TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        value      TEXT    NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (account_id, section, key)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency (
        account_id   TEXT    NOT NULL,
        key          TEXT    NOT NULL,
        fingerprint  TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        id           TEXT    NOT NULL,
        published_at TEXT    NOT NULL,
        created_ms   INTEGER NOT NULL,
        PRIMARY KEY (account_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_age ON idempotency (created_ms);
"#,
    r#"
    CREATE TABLE monitors (
        account_id TEXT    NOT NULL,
        id         TEXT    NOT NULL,
        spec       TEXT    NOT NULL,
        state      TEXT,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (account_id, id)
    ) WITHOUT ROWID;
"#,
];

enum Job {
    Append(Draft, oneshot::Sender<Result<Appended, StoreError>>),
    Monitor(MonitorWrite, oneshot::Sender<Result<bool, StoreError>>),
    Trim(oneshot::Sender<Result<u64, StoreError>>),
}

/// A monitor write; it joins the appends' group commit, since check states
/// are saved after every check.
enum MonitorWrite {
    Put {
        account_id: String,
        id: String,
        spec: String,
    },
    SaveState {
        account_id: String,
        id: String,
        state: String,
    },
    Delete {
        account_id: String,
        id: String,
    },
}

/// A write waiting in the current batch, with the caller to answer.
enum Pending {
    Append(Draft, oneshot::Sender<Result<Appended, StoreError>>),
    Monitor(MonitorWrite, oneshot::Sender<Result<bool, StoreError>>),
}

/// An append's result before commit: new events still have to reach the feed.
enum Outcome {
    New(Event),
    Replayed(Receipt),
}

impl Pending {
    fn fail(self, e: StoreError) {
        match self {
            Pending::Append(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Pending::Monitor(_, reply) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A pending write's result before commit.
enum Written {
    Append(Result<Outcome, StoreError>),
    Monitor(bool),
}

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating and migrating) `data_dir/statushub.db` and starts the
    /// writer thread, which sends every committed event on `feed`.
    pub fn open(data_dir: &Path, retention: Retention, feed: Feed) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("statushub.db");
        let mut writer = open_connection(&path).map_err(unavailable)?;
        migrate(&mut writer).map_err(unavailable)?;
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    retention,
                    feed,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(SqliteStore {
            jobs,
            readers: Arc::default(),
            path,
        })
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(job(tx))
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
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path)?,
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

impl Store for SqliteStore {
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended> {
        Box::pin(self.submit(|tx| Job::Append(draft, tx)))
    }

    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot> {
        let account_id = account_id.to_owned();
        Box::pin(self.read(move |conn| read_snapshot(conn, account_id)))
    }

    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History> {
        let account_id = account_id.to_owned();
        Box::pin(self.read(move |conn| read_history(conn, &account_id, since, limit)))
    }

    fn trim(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.submit(Job::Trim))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))))
    }

    fn put_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        spec: Value,
    ) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::Put {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
            spec: spec.to_string(),
        };
        Box::pin(self.submit(|tx| Job::Monitor(write, tx)))
    }

    fn get_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMonitor>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        Box::pin(async move {
            let found = self
                .read(move |conn| {
                    read_monitors(
                        conn,
                        "WHERE account_id = ?1 AND id = ?2",
                        params![account_id, id],
                    )
                })
                .await?;
            Ok(found.into_iter().next())
        })
    }

    fn get_monitors<'a>(
        &'a self,
        account_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredMonitor>> {
        let account_id = account_id.map(str::to_owned);
        Box::pin(self.read(move |conn| match account_id {
            Some(account_id) => read_monitors(conn, "WHERE account_id = ?1", params![account_id]),
            None => read_monitors(conn, "", params![]),
        }))
    }

    fn save_monitor_state<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        state: Value,
    ) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::SaveState {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
            state: state.to_string(),
        };
        Box::pin(self.submit(|tx| Job::Monitor(write, tx)))
    }

    fn delete_monitor<'a>(&'a self, account_id: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::Delete {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
        };
        Box::pin(self.submit(|tx| Job::Monitor(write, tx)))
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the publish is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Writer {
    conn: Connection,
    retention: Retention,
    feed: Feed,
}

impl Writer {
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Append(draft, reply) => batch.push(Pending::Append(draft, reply)),
                    Job::Monitor(write, reply) => batch.push(Pending::Monitor(write, reply)),
                    Job::Trim(reply) => {
                        let _ = reply.send(self.trim().map_err(unavailable));
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = jobs.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
        }
        // Every handle is gone: leave a compact database behind.
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
    }

    /// Commits a batch in one transaction, feeds the new events in order,
    /// then answers each caller. A storage error fails the whole batch:
    /// nothing of it is stored or acknowledged.
    fn commit(&mut self, batch: Vec<Pending>) {
        match self.write_batch(&batch) {
            Ok(results) => {
                for (pending, written) in batch.into_iter().zip(results) {
                    match (pending, written) {
                        (Pending::Append(_, reply), Written::Append(outcome)) => {
                            let _ = reply.send(outcome.map(|o| self.announce(o)));
                        }
                        (Pending::Monitor(_, reply), Written::Monitor(done)) => {
                            let _ = reply.send(Ok(done));
                        }
                        // `write_batch` answers each write in kind; never reached.
                        (pending, _) => {
                            pending.fail(StoreError::Unavailable("batch mismatch".into()))
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "write batch failed");
                for pending in batch {
                    pending.fail(unavailable_msg(&e));
                }
            }
        }
    }

    /// Hands a committed event to the feed and makes its answer.
    fn announce(&self, outcome: Outcome) -> Appended {
        match outcome {
            Outcome::New(event) => {
                let receipt = receipt_of(&event);
                // A closed feed only means the hub is shutting down.
                let _ = self.feed.blocking_send(Arc::new(event));
                Appended::New(receipt)
            }
            Outcome::Replayed(receipt) => Appended::Replayed(receipt),
        }
    }

    fn write_batch(&mut self, batch: &[Pending]) -> rusqlite::Result<Vec<Written>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        let mut heads = Heads::default();
        let mut results = Vec::with_capacity(batch.len());
        for pending in batch {
            results.push(match pending {
                Pending::Append(draft, _) => {
                    Written::Append(append_one(&tx, draft, &mut heads, &self.retention, now)?)
                }
                Pending::Monitor(write, _) => Written::Monitor(write_monitor(&tx, write, now)?),
            });
        }
        heads.save(&tx, &self.retention)?;
        tx.commit()?;
        Ok(results)
    }

    fn trim(&mut self) -> rusqlite::Result<u64> {
        let now = now_ms();
        let events_cutoff = now - self.retention.max_age.as_millis() as i64;
        let idem_cutoff = now - self.retention.idempotency_ttl.as_millis() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let dropped = tx.execute("DELETE FROM events WHERE stored_ms < ?1", [events_cutoff])?;
        tx.execute(
            "DELETE FROM idempotency WHERE created_ms < ?1",
            [idem_cutoff],
        )?;
        tx.commit()?;
        Ok(dropped as u64)
    }
}

fn unavailable_msg(e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn receipt_of(event: &Event) -> Receipt {
    Receipt {
        id: event.id.clone(),
        account_id: event.account_id.clone(),
        seq: event.seq,
        published_at: event.published_at.clone(),
    }
}

/// The head seq of every account a batch appends to. Heads are read once
/// per account and batch and written back once before commit, and the
/// retention cut runs once per account: a batch of 512 events into one
/// account costs one head read, one head write and one range delete instead
/// of 512 of each. It lives for one transaction only, so a failed batch
/// leaves nothing behind to invalidate.
#[derive(Default)]
struct Heads<'b> {
    seqs: HashMap<&'b str, u64>,
}

impl<'b> Heads<'b> {
    /// The next seq of `account`, counting appends earlier in this batch.
    fn next(&mut self, tx: &rusqlite::Transaction<'_>, account: &'b str) -> rusqlite::Result<u64> {
        if let Some(head) = self.seqs.get_mut(account) {
            *head += 1;
            return Ok(*head);
        }
        let seq = read_head(tx, account)? + 1;
        self.seqs.insert(account, seq);
        Ok(seq)
    }

    /// Writes the new heads and drops events beyond `max_events` per account.
    fn save(&self, tx: &rusqlite::Transaction<'_>, retention: &Retention) -> rusqlite::Result<()> {
        for (&account, &head) in &self.seqs {
            tx.prepare_cached(
                "INSERT INTO accounts (account_id, head) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO UPDATE SET head = excluded.head",
            )?
            .execute(params![account, head])?;
            if head > retention.max_events {
                tx.prepare_cached("DELETE FROM events WHERE account_id = ?1 AND seq <= ?2")?
                    .execute(params![account, head - retention.max_events])?;
            }
        }
        Ok(())
    }
}

/// One append inside the batch transaction. The outer `Result` is a storage
/// failure (fails the batch); the inner one a per-draft refusal.
fn append_one<'b>(
    tx: &rusqlite::Transaction<'_>,
    draft: &'b Draft,
    heads: &mut Heads<'b>,
    retention: &Retention,
    now: i64,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    let account = draft.account_id.as_str();
    if let Some(idem) = &draft.idempotency {
        let ttl_cutoff = now - retention.idempotency_ttl.as_millis() as i64;
        let seen = tx
            .prepare_cached(
                "SELECT fingerprint, seq, id, published_at FROM idempotency
                 WHERE account_id = ?1 AND key = ?2 AND created_ms >= ?3",
            )?
            .query_row(params![account, idem.key, ttl_cutoff], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .optional()?;
        if let Some((fingerprint, seq, id, published_at)) = seen {
            if fingerprint != idem.fingerprint {
                return Ok(Err(StoreError::IdempotencyConflict));
            }
            let receipt = Receipt {
                id,
                account_id: account.to_owned(),
                seq,
                published_at,
            };
            return Ok(Ok(Outcome::Replayed(receipt)));
        }
    }

    let seq = heads.next(tx, account)?;

    let data: Box<RawValue> = match &draft.body {
        Body::Fixed(data) => data.clone(),
        Body::Entry {
            section,
            key,
            derive,
        } => {
            let previous = read_entry(tx, account, *section, key)?;
            let EntryChange { data, entry } = derive(previous.as_ref());
            let entry = entry.map(|e| e.to_string());
            write_entry(tx, account, *section, key, entry.as_deref(), seq)?;
            to_raw(&data)?
        }
    };

    tx.prepare_cached(
        "INSERT INTO events (account_id, seq, id, event, data, published_at, stored_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account,
        seq,
        draft.id,
        draft.event,
        data.get(),
        draft.published_at,
        now
    ])?;
    if let Some(idem) = &draft.idempotency {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotency (account_id, key, fingerprint, seq, id, published_at, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![account, idem.key, idem.fingerprint, seq, draft.id, draft.published_at, now])?;
    }

    Ok(Ok(Outcome::New(Event {
        event: draft.event.clone(),
        account_id: account.to_owned(),
        seq,
        id: draft.id.clone(),
        published_at: draft.published_at.clone(),
        data,
    })))
}

fn to_raw(value: &Value) -> rusqlite::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn read_entry(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    section: Section,
    key: &str,
) -> rusqlite::Result<Option<Value>> {
    Ok(tx
        .prepare_cached(
            "SELECT value FROM entries WHERE account_id = ?1 AND section = ?2 AND key = ?3",
        )?
        .query_row(params![account, section.as_str(), key], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Sets a snapshot entry (`Some`) or removes it (`None`).
fn write_entry(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    section: Section,
    key: &str,
    value: Option<&str>,
    seq: u64,
) -> rusqlite::Result<()> {
    match value {
        Some(value) => tx.prepare_cached(
            "INSERT INTO entries (account_id, section, key, value, seq) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, section, key) DO UPDATE SET value = excluded.value, seq = excluded.seq",
        )?
        .execute(params![account, section.as_str(), key, value, seq])?,
        None => tx
            .prepare_cached(
                "DELETE FROM entries WHERE account_id = ?1 AND section = ?2 AND key = ?3",
            )?
            .execute(params![account, section.as_str(), key])?,
    };
    Ok(())
}

/// One monitor write inside the batch transaction; see [`Store`] for what
/// each returns.
fn write_monitor(
    tx: &rusqlite::Transaction<'_>,
    write: &MonitorWrite,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(match write {
        MonitorWrite::Put {
            account_id,
            id,
            spec,
        } => {
            let updated = tx
                .prepare_cached(
                    "UPDATE monitors SET spec = ?3, updated_ms = ?4 WHERE account_id = ?1 AND id = ?2",
                )?
                .execute(params![account_id, id, spec, now])?;
            if updated == 0 {
                tx.prepare_cached(
                    "INSERT INTO monitors (account_id, id, spec, state, updated_ms)
                     VALUES (?1, ?2, ?3, NULL, ?4)",
                )?
                .execute(params![account_id, id, spec, now])?;
            }
            updated == 0
        }
        MonitorWrite::SaveState {
            account_id,
            id,
            state,
        } => {
            tx.prepare_cached(
                "UPDATE monitors SET state = ?3, updated_ms = ?4 WHERE account_id = ?1 AND id = ?2",
            )?
            .execute(params![account_id, id, state, now])?
                > 0
        }
        MonitorWrite::Delete { account_id, id } => {
            tx.prepare_cached("DELETE FROM monitors WHERE account_id = ?1 AND id = ?2")?
                .execute(params![account_id, id])?
                > 0
        }
    })
}

/// Monitors matching `filter` (a `WHERE` clause over `params`). A row whose
/// JSON no longer parses is skipped with a warning rather than failing the read.
fn read_monitors(
    conn: &mut Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<StoredMonitor>> {
    let sql = format!(
        "SELECT account_id, id, spec, state FROM monitors {filter} ORDER BY account_id, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut monitors = Vec::new();
    while let Some(row) = rows.next()? {
        let account_id: String = row.get(0)?;
        let id: String = row.get(1)?;
        let spec: String = row.get(2)?;
        let state: Option<String> = row.get(3)?;
        let Ok(spec) = serde_json::from_str(&spec) else {
            tracing::warn!(account = %account_id, monitor = %id, "skipping a monitor whose stored spec is not JSON");
            continue;
        };
        let state = state.and_then(|s| serde_json::from_str(&s).ok());
        monitors.push(StoredMonitor {
            account_id,
            id,
            spec,
            state,
        });
    }
    Ok(monitors)
}

fn read_head(tx: &rusqlite::Transaction<'_>, account_id: &str) -> rusqlite::Result<u64> {
    Ok(tx
        .prepare_cached("SELECT head FROM accounts WHERE account_id = ?1")?
        .query_row([account_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn read_snapshot(conn: &mut Connection, account_id: String) -> rusqlite::Result<Snapshot> {
    let tx = conn.transaction()?;
    let mut snapshot = Snapshot {
        seq: read_head(&tx, &account_id)?,
        ..Snapshot::default()
    };
    {
        let mut stmt =
            tx.prepare_cached("SELECT section, key, value FROM entries WHERE account_id = ?1")?;
        let mut rows = stmt.query([&account_id])?;
        while let Some(row) = rows.next()? {
            let section: String = row.get(0)?;
            let value: String = row.get(2)?;
            if let (Some(section), Ok(value)) =
                (Section::parse(&section), serde_json::from_str(&value))
            {
                snapshot.section_mut(section).insert(row.get(1)?, value);
            }
        }
    }
    snapshot.account_id = account_id;
    Ok(snapshot)
}

fn read_history(
    conn: &mut Connection,
    account_id: &str,
    since: u64,
    limit: usize,
) -> rusqlite::Result<History> {
    let tx = conn.transaction()?;
    let head = read_head(&tx, account_id)?;
    let first: Option<u64> = tx
        .prepare_cached("SELECT MIN(seq) FROM events WHERE account_id = ?1")?
        .query_row([account_id], |r| r.get(0))?;
    let complete = since == head || (since < head && first.is_some_and(|f| f <= since + 1));
    let mut events = Vec::new();
    if since < head {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, id, event, data, published_at FROM events
             WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![account_id, since, limit as i64])?;
        while let Some(row) = rows.next()? {
            let data: String = row.get(3)?;
            events.push(Event {
                seq: row.get(0)?,
                id: row.get(1)?,
                event: row.get(2)?,
                data: RawValue::from_string(data).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        3,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                published_at: row.get(4)?,
                account_id: account_id.to_owned(),
            });
        }
    }
    Ok(History {
        events,
        head,
        complete,
    })
}
