//! The event log role on SQLite: the SQL of appends (run by the writer
//! inside its batch transaction), of snapshot and history reads (run on the
//! read pool) and of the retention trim.

use super::{SqliteStore, webhooks, writer::WriteOp};
use crate::{
    config::Retention,
    event::{Event, Section},
    store::{
        Appended, Body, Draft, EntryChange, EventLog, History, Receipt, Snapshot, StoreError,
        StoreFuture, webhooks::fill_services_notified,
    },
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, value::RawValue};
use std::collections::HashMap;

impl EventLog for SqliteStore {
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended> {
        Box::pin(self.submit(|tx| WriteOp::Append(draft, tx)))
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
        Box::pin(self.submit(WriteOp::Trim))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.close_now())
    }
}

/// An append's result before commit: new events still have to reach the feed.
pub(super) enum Outcome {
    New(Event),
    Replayed(Receipt),
}

pub(super) fn receipt_of(event: &Event) -> Receipt {
    Receipt {
        id: event.id.clone(),
        account_id: event.account_id.clone(),
        seq: event.seq,
        published_at: event.published_at.clone(),
    }
}

/// Drops events past the age limit and expired idempotency records.
pub(super) fn trim(
    tx: &rusqlite::Transaction<'_>,
    retention: &Retention,
    now: i64,
) -> rusqlite::Result<u64> {
    let events_cutoff = now - retention.max_age.as_millis() as i64;
    let idem_cutoff = now - retention.idempotency_ttl.as_millis() as i64;
    let dropped = tx.execute("DELETE FROM events WHERE stored_ms < ?1", [events_cutoff])?;
    tx.execute(
        "DELETE FROM idempotency WHERE created_ms < ?1",
        [idem_cutoff],
    )?;
    // Sync job starts' keys (`store::jobs`) expire alike.
    tx.execute(
        "DELETE FROM job_idempotency WHERE created_ms < ?1",
        [idem_cutoff],
    )?;
    // Finished webhook deliveries are kept as long as events are.
    tx.execute(
        "DELETE FROM outbox WHERE status <> 'pending' AND created_ms < ?1",
        [events_cutoff],
    )?;
    Ok(dropped as u64)
}

/// The head seq of every account a batch appends to. Heads are read once
/// per account and batch and written back once before commit, and the
/// retention cut runs once per account: a batch of 512 events into one
/// account costs one head read, one head write and one range delete instead
/// of 512 of each. It lives for one transaction only, so a failed batch
/// leaves nothing behind to invalidate.
#[derive(Default)]
pub(super) struct Heads<'b> {
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
    pub(super) fn save(
        &self,
        tx: &rusqlite::Transaction<'_>,
        retention: &Retention,
    ) -> rusqlite::Result<()> {
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
pub(super) fn append_one<'b>(
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
    // The webhook endpoints this event is queued for, decided here, in the
    // transaction that sequences it (store::webhooks).
    let notified = webhooks::queue_for(tx, account, &draft.event)?;

    let data: Box<RawValue> = match &draft.body {
        Body::Fixed(data) => data.clone(),
        Body::Entry {
            section,
            key,
            derive,
        } => {
            let previous = read_entry(tx, account, *section, key)?;
            let EntryChange {
                mut data,
                mut entry,
            } = derive(previous.as_ref());
            fill_services_notified(&draft.event, &mut data, &notified);
            if let Some(entry) = &mut entry {
                fill_services_notified(&draft.event, entry, &notified);
            }
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

    let event = Event {
        event: draft.event.clone(),
        account_id: account.to_owned(),
        seq,
        id: draft.id.clone(),
        published_at: draft.published_at.clone(),
        data,
    };
    webhooks::enqueue_event(tx, &notified, &event, now)?;
    Ok(Ok(Outcome::New(event)))
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
        .and_then(|text| {
            serde_json::from_str(&text)
                .inspect_err(|error| {
                    tracing::error!(%account, section = section.as_str(), %key, %error, "read a stored snapshot entry that is not JSON as none");
                })
                .ok()
        }))
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

fn read_head(tx: &rusqlite::Transaction<'_>, account_id: &str) -> rusqlite::Result<u64> {
    Ok(tx
        .prepare_cached("SELECT head FROM accounts WHERE account_id = ?1")?
        .query_row([account_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The epoch of every sequence in this database.
fn read_epoch(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<String> {
    tx.prepare_cached("SELECT value FROM meta WHERE key = 'epoch'")?
        .query_row([], |r| r.get(0))
}

fn read_snapshot(conn: &mut Connection, account_id: String) -> rusqlite::Result<Snapshot> {
    let tx = conn.transaction()?;
    let mut snapshot = Snapshot {
        epoch: read_epoch(&tx)?,
        seq: read_head(&tx, &account_id)?,
        ..Snapshot::default()
    };
    {
        let mut stmt =
            tx.prepare_cached("SELECT section, key, value FROM entries WHERE account_id = ?1")?;
        let mut rows = stmt.query([&account_id])?;
        while let Some(row) = rows.next()? {
            let section: String = row.get(0)?;
            let key: String = row.get(1)?;
            let value: String = row.get(2)?;
            match (Section::parse(&section), serde_json::from_str(&value)) {
                (Some(section), Ok(value)) => {
                    snapshot.section_mut(section).insert(key, value);
                }
                (None, _) => tracing::error!(account = %account_id, %section, %key,
                    "left out a stored snapshot entry of an unknown section"),
                (_, Err(error)) => tracing::error!(account = %account_id, %section, %key, %error,
                    "left out a stored snapshot entry that is not JSON"),
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
    let epoch = read_epoch(&tx)?;
    let head = read_head(&tx, account_id)?;
    let first: Option<u64> = tx
        .prepare_cached("SELECT MIN(seq) FROM events WHERE account_id = ?1")?
        .query_row([account_id], |r| r.get(0))?;
    let complete = since == head || (since < head && first.is_some_and(|f| f <= since + 1));
    let mut events = Vec::new();
    if since < head {
        // No LIMIT: a row left out does not shorten the page, so a short
        // page still means the end (rows are read lazily, in key order).
        let mut stmt = tx.prepare_cached(
            "SELECT seq, id, event, data, published_at FROM events
             WHERE account_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![account_id, since])?;
        while events.len() < limit {
            let Some(row) = rows.next()? else { break };
            let seq: u64 = row.get(0)?;
            let Some(data) = servable_data(account_id, seq, row.get(3)?) else {
                continue;
            };
            events.push(Event {
                seq,
                id: row.get(1)?,
                event: row.get(2)?,
                data,
                published_at: row.get(4)?,
                account_id: account_id.to_owned(),
            });
        }
    }
    Ok(History {
        events,
        head,
        complete,
        epoch,
    })
}

/// A stored event's data if any client can read it (the rule of
/// [`crate::event::json`]); `None`, logged, for a row that breaks it (left
/// by an older version or damaged). Readers see a gap in `seq` there, as a
/// filtered subscription does, and never a failed page.
fn servable_data(account_id: &str, seq: u64, data: String) -> Option<Box<RawValue>> {
    let checked = crate::event::json::check(data.as_bytes(), "data")
        .map_err(|e| e.to_string())
        .and_then(|()| RawValue::from_string(data).map_err(|e| e.to_string()));
    checked
        .inspect_err(|error| {
            tracing::error!(account = %account_id, seq, %error, "left out a stored event whose data cannot be served");
        })
        .ok()
}
