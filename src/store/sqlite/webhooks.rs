//! The webhook roles on SQLite. Registry and outbox writes run on the writer
//! thread, each in a transaction of its own (so a claim is atomic and
//! ordered with appends); reads use the read pool. The outbox rows of an
//! event are written by the append itself ([`queue_for`], [`enqueue_event`]).

use super::{SqliteStore, now_ms, unavailable, writer::WriteOp};
use crate::{
    event::Event,
    store::{
        Attempt, Delivery, DeliveryStatus, Endpoint, NewDelivery, Next, Outbox, OutboxDepth,
        PutWebhook, StoreError, StoreFuture, WebhookRegistry, webhooks,
    },
};
use rusqlite::{Connection, Row, Transaction, params};
use tokio::sync::oneshot;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A webhook write for the writer thread, with its caller.
pub(super) enum WebhookOp {
    Put(Endpoint, Reply<PutWebhook>),
    Delete(Option<String>, String, Reply<bool>),
    Rotate(Option<String>, String, String, i64, Reply<Option<Endpoint>>),
    Claim(i64, i64, usize, Reply<Vec<Delivery>>),
    Settle(String, Attempt, Reply<bool>),
    Release(String, Reply<bool>),
    Retry(String, String, i64, Reply<Option<Delivery>>),
    Enqueue(NewDelivery, Reply<Delivery>),
}

impl WebhookOp {
    /// Runs the write in its own transaction and answers the caller.
    pub(super) fn run(self, conn: &mut Connection) {
        fn answer<T>(
            conn: &mut Connection,
            reply: Reply<T>,
            write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
        ) {
            let result = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .and_then(|tx| {
                    let value = write(&tx)?;
                    tx.commit()?;
                    Ok(value)
                })
                .map_err(unavailable);
            let _ = reply.send(result);
        }
        match self {
            WebhookOp::Put(endpoint, reply) => answer(conn, reply, |tx| put(tx, endpoint)),
            WebhookOp::Delete(account, id, reply) => answer(conn, reply, |tx| {
                let scope = account.unwrap_or_default();
                let gone = tx.execute(
                    "DELETE FROM webhooks WHERE id = ?1 AND account_id = ?2",
                    params![id, scope],
                )? > 0;
                if gone {
                    tx.execute(
                        "DELETE FROM outbox WHERE endpoint_id = ?1 AND status = 'pending'",
                        [&id],
                    )?;
                }
                Ok(gone)
            }),
            WebhookOp::Rotate(account, id, secret, until, reply) => answer(conn, reply, |tx| {
                let found = read_endpoints(
                    tx,
                    "WHERE id = ?1 AND account_id = ?2",
                    params![id, account.unwrap_or_default()],
                )?;
                let Some(endpoint) = found.into_iter().next() else {
                    return Ok(None);
                };
                let endpoint = webhooks::rotated(endpoint, secret, until);
                let json = serde_json::to_string(&endpoint)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                tx.execute(
                    "UPDATE webhooks SET endpoint = ?2 WHERE id = ?1",
                    params![id, json],
                )?;
                Ok(Some(endpoint))
            }),
            WebhookOp::Claim(now, lease, limit, reply) => {
                answer(conn, reply, |tx| claim(tx, now, lease, limit))
            }
            WebhookOp::Settle(id, attempt, reply) => {
                answer(conn, reply, |tx| settle(tx, &id, attempt))
            }
            WebhookOp::Release(id, reply) => answer(conn, reply, |tx| {
                Ok(tx.execute(
                    "UPDATE outbox SET lease_until_ms = 0 WHERE delivery_id = ?1",
                    [&id],
                )? > 0)
            }),
            WebhookOp::Retry(endpoint, id, now, reply) => answer(conn, reply, |tx| {
                let changed = tx.execute(
                    "UPDATE outbox SET status = 'pending', next_attempt_ms = ?3, lease_until_ms = 0
                     WHERE delivery_id = ?1 AND endpoint_id = ?2",
                    params![id, endpoint, now],
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                read_deliveries(tx, "WHERE delivery_id = ?1", params![id])
                    .map(|d| d.into_iter().next())
            }),
            WebhookOp::Enqueue(new, reply) => answer(conn, reply, |tx| {
                let id = webhooks::new_delivery_id();
                let now = now_ms();
                insert(tx, &id, &new, 0, now)?;
                read_deliveries(tx, "WHERE delivery_id = ?1", params![id]).and_then(|d| {
                    d.into_iter()
                        .next()
                        .ok_or(rusqlite::Error::QueryReturnedNoRows)
                })
            }),
        }
    }
}

impl SqliteStore {
    async fn webhook<T>(&self, op: impl FnOnce(Reply<T>) -> WebhookOp) -> Result<T, StoreError> {
        self.submit(|reply| WriteOp::Webhook(op(reply))).await
    }
}

impl WebhookRegistry for SqliteStore {
    fn put_webhook(&self, endpoint: Endpoint) -> StoreFuture<'_, PutWebhook> {
        Box::pin(self.webhook(|r| WebhookOp::Put(endpoint, r)))
    }

    fn get_webhook<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Endpoint>> {
        let id = id.to_owned();
        Box::pin(self.read(move |conn| {
            let tx = conn.transaction()?;
            Ok(read_endpoints(&tx, "WHERE id = ?1", params![id])?
                .into_iter()
                .next())
        }))
    }

    fn list_webhooks<'a>(
        &'a self,
        scope: Option<Option<&'a str>>,
    ) -> StoreFuture<'a, Vec<Endpoint>> {
        let scope = scope.map(|s| s.unwrap_or_default().to_owned());
        Box::pin(self.read(move |conn| {
            let tx = conn.transaction()?;
            match scope {
                Some(account) => read_endpoints(&tx, "WHERE account_id = ?1", params![account]),
                None => read_endpoints(&tx, "", params![]),
            }
        }))
    }

    fn rotate_webhook_secret<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
        secret: String,
        old_until_ms: i64,
    ) -> StoreFuture<'a, Option<Endpoint>> {
        let (account, id) = (account_id.map(str::to_owned), id.to_owned());
        Box::pin(self.webhook(move |r| WebhookOp::Rotate(account, id, secret, old_until_ms, r)))
    }

    fn delete_webhook<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
    ) -> StoreFuture<'a, bool> {
        let (account, id) = (account_id.map(str::to_owned), id.to_owned());
        Box::pin(self.webhook(|r| WebhookOp::Delete(account, id, r)))
    }
}

impl Outbox for SqliteStore {
    fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(self.webhook(move |r| WebhookOp::Claim(now_ms, lease_ms, limit, r)))
    }

    fn settle<'a>(&'a self, delivery: &'a Delivery, attempt: Attempt) -> StoreFuture<'a, bool> {
        let id = delivery.id.clone();
        Box::pin(self.webhook(|r| WebhookOp::Settle(id, attempt, r)))
    }

    fn release<'a>(&'a self, delivery: &'a Delivery) -> StoreFuture<'a, bool> {
        let id = delivery.id.clone();
        Box::pin(self.webhook(|r| WebhookOp::Release(id, r)))
    }

    fn deliveries<'a>(
        &'a self,
        endpoint_id: &'a str,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Delivery>> {
        let endpoint = endpoint_id.to_owned();
        let limit = limit as i64;
        Box::pin(self.read(move |conn| {
            let tx = conn.transaction()?;
            match status {
                Some(status) => read_deliveries(
                    &tx,
                    "WHERE endpoint_id = ?1 AND status = ?2 ORDER BY created_ms DESC, seq DESC LIMIT ?3",
                    params![endpoint, status.as_str(), limit],
                ),
                None => read_deliveries(
                    &tx,
                    "WHERE endpoint_id = ?1 ORDER BY created_ms DESC, seq DESC LIMIT ?2",
                    params![endpoint, limit],
                ),
            }
        }))
    }

    fn retry_delivery<'a>(
        &'a self,
        endpoint_id: &'a str,
        delivery_id: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<Delivery>> {
        let (endpoint, id) = (endpoint_id.to_owned(), delivery_id.to_owned());
        Box::pin(self.webhook(move |r| WebhookOp::Retry(endpoint, id, now_ms, r)))
    }

    fn enqueue(&self, delivery: NewDelivery) -> StoreFuture<'_, Delivery> {
        Box::pin(self.webhook(|r| WebhookOp::Enqueue(delivery, r)))
    }

    fn outbox_depth(&self) -> StoreFuture<'_, OutboxDepth> {
        Box::pin(self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE status = 'pending'",
                [],
                |r| {
                    Ok(OutboxDepth {
                        pending: r.get(0)?,
                        oldest_pending_ms: r.get(1)?,
                    })
                },
            )
        }))
    }
}

/// Frees every claim: one SQLite file serves one node, so a claim found at
/// open was left by a process that died mid-attempt (`kill -9`); its
/// delivery is due again at once instead of after the lease.
pub(super) fn release_leases(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE outbox SET lease_until_ms = 0 WHERE lease_until_ms <> 0",
        [],
    )?;
    Ok(())
}

/// The endpoints `event` of `account` is queued for, inside the append's
/// transaction.
pub(super) fn queue_for(
    tx: &Transaction<'_>,
    account: &str,
    event: &str,
) -> rusqlite::Result<Vec<String>> {
    let endpoints = read_endpoints(
        tx,
        "WHERE enabled = 1 AND (account_id = '' OR account_id = ?1)",
        params![account],
    )?;
    Ok(webhooks::subscribed(&endpoints, account, event))
}

/// Writes one pending delivery of `event` per endpoint id, inside the
/// append's transaction.
pub(super) fn enqueue_event(
    tx: &Transaction<'_>,
    endpoint_ids: &[String],
    event: &Event,
    now: i64,
) -> rusqlite::Result<()> {
    if endpoint_ids.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_string(event)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    for endpoint_id in endpoint_ids {
        let new = NewDelivery {
            endpoint_id: endpoint_id.clone(),
            account_id: event.account_id.clone(),
            event_id: event.id.clone(),
            event: event.event.clone(),
            body: body.clone(),
        };
        insert(tx, &webhooks::new_delivery_id(), &new, event.seq, now)?;
    }
    Ok(())
}

fn insert(
    tx: &Transaction<'_>,
    id: &str,
    new: &NewDelivery,
    seq: u64,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO outbox (delivery_id, endpoint_id, account_id, seq, event_id, event, body,
                             status, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
    )?
    .execute(params![
        id,
        new.endpoint_id,
        new.account_id,
        seq,
        new.event_id,
        new.event,
        new.body,
        now
    ])?;
    Ok(())
}

fn put(tx: &Transaction<'_>, mut endpoint: Endpoint) -> rusqlite::Result<PutWebhook> {
    let scope = endpoint.account_id.clone().unwrap_or_default();
    let existing = read_endpoints(tx, "WHERE id = ?1", params![endpoint.id])?
        .into_iter()
        .next();
    let created = match existing {
        Some(old) if old.account_id.clone().unwrap_or_default() != scope => {
            return Ok(PutWebhook::Taken);
        }
        Some(old) => {
            endpoint.secret = old.secret;
            endpoint.created_at = old.created_at;
            endpoint.previous_secrets = old.previous_secrets;
            false
        }
        None => true,
    };
    let json = serde_json::to_string(&endpoint)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT INTO webhooks (id, account_id, endpoint, enabled) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, enabled = excluded.enabled",
        params![endpoint.id, scope, json, endpoint.enabled],
    )?;
    Ok(if created {
        PutWebhook::Created(endpoint)
    } else {
        PutWebhook::Updated(endpoint)
    })
}

/// The head pending delivery of each endpoint and account that is due and
/// not leased, claimed until `now + lease`.
fn claim(
    tx: &Transaction<'_>,
    now: i64,
    lease: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Delivery>> {
    let due = read_deliveries(
        tx,
        "WHERE o.status = 'pending' AND o.next_attempt_ms <= ?1 AND o.lease_until_ms <= ?1
           AND (o.seq = 0 OR NOT EXISTS (
               SELECT 1 FROM outbox p WHERE p.endpoint_id = o.endpoint_id
                 AND p.account_id = o.account_id AND p.status = 'pending'
                 AND p.seq > 0 AND p.seq < o.seq))
         ORDER BY o.next_attempt_ms, o.seq LIMIT ?2",
        params![now, limit as i64],
    )?;
    for delivery in &due {
        tx.prepare_cached("UPDATE outbox SET lease_until_ms = ?2 WHERE delivery_id = ?1")?
            .execute(params![delivery.id, now + lease])?;
    }
    Ok(due)
}

fn settle(tx: &Transaction<'_>, id: &str, attempt: Attempt) -> rusqlite::Result<bool> {
    let (status, next) = match attempt.next {
        Next::Delivered => (DeliveryStatus::Delivered, 0),
        Next::RetryAt(at) => (DeliveryStatus::Pending, at),
        Next::GiveUp => (DeliveryStatus::Failed, 0),
    };
    Ok(tx
        .prepare_cached(
            "UPDATE outbox SET status = ?2, next_attempt_ms = ?3, lease_until_ms = 0,
                attempts = attempts + 1, last_status = ?4, last_error = ?5, last_latency_ms = ?6
             WHERE delivery_id = ?1 AND status = 'pending'",
        )?
        .execute(params![
            id,
            status.as_str(),
            next,
            attempt.status_code,
            attempt.error,
            attempt.latency_ms as i64
        ])?
        > 0)
}

fn read_endpoints(
    tx: &Transaction<'_>,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Endpoint>> {
    let sql = format!("SELECT id, endpoint FROM webhooks {filter} ORDER BY id");
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut endpoints = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let text: String = row.get(1)?;
        match serde_json::from_str(&text) {
            Ok(endpoint) => endpoints.push(endpoint),
            Err(error) => {
                tracing::error!(webhook = %id, %error, "left out a stored webhook that is not JSON")
            }
        }
    }
    Ok(endpoints)
}

fn read_deliveries(
    tx: &Transaction<'_>,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT o.delivery_id, o.endpoint_id, o.account_id, o.seq, o.event_id, o.event, o.body,
                o.status, o.attempts, o.next_attempt_ms, o.last_status, o.last_error,
                o.last_latency_ms, o.created_ms
         FROM outbox o {filter}"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, delivery)?;
    rows.collect()
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get(7)?;
    Ok(Delivery {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        account_id: r.get(2)?,
        seq: r.get(3)?,
        event_id: r.get(4)?,
        event: r.get(5)?,
        body: r.get(6)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
        attempts: r.get(8)?,
        next_attempt_ms: r.get(9)?,
        last_status: r.get(10)?,
        last_error: r.get(11)?,
        last_latency_ms: r.get::<_, Option<i64>>(12)?.map(|ms| ms.max(0) as u64),
        created_ms: r.get(13)?,
    })
}
