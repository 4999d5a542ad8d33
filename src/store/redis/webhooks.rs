//! The webhook roles in Redis.
//!
//! - Registry: one hash of every endpoint (id → JSON) under the
//!   deployment's prefix; puts and deletes are Lua scripts so the scope
//!   check and the write are one step. The append path reads it once per
//!   batch and matches each draft against it.
//! - Outbox: per account (under its hash tag, so the append script writes
//!   it in the same step as the event) a hash of deliveries (id → JSON)
//!   and a sorted set of the pending ones by seq. A set of the accounts that
//!   have deliveries lets the dispatcher find them; it is written right
//!   after the append and rebuilt by `SCAN` on the first claim, so an
//!   account whose append was acknowledged is never forgotten. Claims and
//!   settles are Lua scripts (`claim_outbox`, `settle_outbox`): atomic, so
//!   two nodes never hold one delivery. Reads of an endpoint's deliveries
//!   visit every account's outbox: fine for the deliveries of a few
//!   thousand accounts, documented in docs/WEBHOOKS.md.

use super::{
    RedisStore, codec, conn,
    keys::{Keys, OUTBOX_PENDING_SUFFIX},
    scripts::SCRIPTS,
    writer::Writer,
};
use crate::store::{
    Attempt, Delivery, DeliveryStatus, Endpoint, NewDelivery, Next, Outbox, OutboxDepth,
    PutWebhook, StoreError, StoreFuture, WebhookRegistry, webhooks::new_delivery_id,
};
use redis::{AsyncCommands, Value};
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, sync::Mutex};

/// The key account of deliveries that belong to no account (a test event
/// to an endpoint of every account); not a valid account id, so it cannot
/// collide with one.
const NO_ACCOUNT: &str = "~";

/// The accounts sets (one per key prefix) rebuilt from a `SCAN` since start.
static RECOVERED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A delivery as the scripts keep it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    endpoint_id: String,
    account_id: String,
    seq: u64,
    event_id: String,
    event: String,
    body: String,
    status: String,
    attempts: u32,
    next_attempt_ms: i64,
    lease_until_ms: i64,
    #[serde(default)]
    last_status: Option<u16>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    last_latency_ms: Option<u64>,
    created_ms: i64,
}

impl Record {
    fn parse(text: &str) -> Option<Delivery> {
        let r: Record = serde_json::from_str(text)
            .inspect_err(
                |error| tracing::error!(%error, "left out a stored delivery that is not JSON"),
            )
            .ok()?;
        Some(Delivery {
            status: DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Failed),
            id: r.id,
            endpoint_id: r.endpoint_id,
            account_id: r.account_id,
            seq: r.seq,
            event_id: r.event_id,
            event: r.event,
            body: r.body,
            attempts: r.attempts,
            next_attempt_ms: r.next_attempt_ms,
            last_status: r.last_status,
            last_error: r.last_error,
            last_latency_ms: r.last_latency_ms,
            created_ms: r.created_ms,
        })
    }
}

fn key_account(account_id: &str) -> &str {
    if account_id.is_empty() {
        NO_ACCOUNT
    } else {
        account_id
    }
}

impl Writer {
    /// Every endpoint, read once per append batch.
    pub(super) async fn webhooks(&mut self) -> Result<Vec<Endpoint>, StoreError> {
        read_endpoints(&mut self.conn, &self.keys).await
    }

    /// Lists `account` among those with deliveries (before the append that
    /// queued them is answered). A failure is logged: the `SCAN` on the
    /// next start finds the account again.
    pub(super) async fn note_outbox(&mut self, account_id: &str) {
        let added = conn::bounded(
            self.conn
                .sadd::<_, _, u64>(self.keys.outbox_accounts(), key_account(account_id)),
        )
        .await;
        if let Err(error) = added {
            tracing::warn!(%error, "webhooks: could not list an account with deliveries; found again at the next start");
        }
    }
}

async fn read_endpoints(conn: &mut conn::Conn, keys: &Keys) -> Result<Vec<Endpoint>, StoreError> {
    let all: HashMap<String, String> = conn::bounded(conn.hgetall(keys.webhooks())).await?;
    let mut endpoints: Vec<Endpoint> = all
        .into_iter()
        .filter_map(|(id, text)| {
            serde_json::from_str(&text)
                .inspect_err(|error| {
                    tracing::error!(webhook = %id, %error, "left out a stored webhook that is not JSON")
                })
                .ok()
        })
        .collect();
    endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(endpoints)
}

impl RedisStore {
    /// Every endpoint, by id.
    async fn all_webhooks(&self) -> Result<Vec<Endpoint>, StoreError> {
        read_endpoints(&mut self.conn.clone(), &self.keys).await
    }

    /// The accounts with deliveries (their key names); the first call
    /// after start adds those a `SCAN` finds.
    async fn outbox_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let set = self.keys.outbox_accounts();
        let first = {
            let mut done = RECOVERED.lock().unwrap_or_else(|p| p.into_inner());
            let first = !done.contains(&set);
            if first {
                done.push(set.clone());
            }
            first
        };
        if first {
            let found = conn::scan(&mut conn, &self.keys.pattern(OUTBOX_PENDING_SUFFIX)).await?;
            for key in found {
                if let Some(account) = self.keys.account_of(&key, OUTBOX_PENDING_SUFFIX) {
                    conn::bounded(conn.sadd::<_, _, u64>(self.keys.outbox_accounts(), account))
                        .await?;
                }
            }
        }
        conn::bounded(conn.smembers(self.keys.outbox_accounts())).await
    }

    /// Runs `settle_outbox` on the delivery's account.
    async fn change(
        &self,
        account_id: &str,
        id: &str,
        args: [String; 6],
    ) -> Result<Option<Delivery>, StoreError> {
        self.open_now()?;
        let keys = self.keys.account(key_account(account_id));
        let mut script = SCRIPTS.settle_outbox.key(&keys.outbox);
        script.key(&keys.outbox_pending).arg(id);
        for arg in args {
            script.arg(arg);
        }
        let reply: Option<String> =
            conn::bounded(script.invoke_async(&mut self.conn.clone())).await?;
        Ok(reply.as_deref().and_then(Record::parse))
    }

    /// Every delivery of every account (for the reads by endpoint).
    async fn all_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = self.conn.clone();
        let mut all = Vec::new();
        for account in self.outbox_accounts().await? {
            let texts: Vec<String> =
                conn::bounded(conn.hvals(self.keys.account(&account).outbox)).await?;
            all.extend(texts.iter().filter_map(|t| Record::parse(t)));
        }
        Ok(all)
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint, StoreError> {
    serde_json::from_str(text).map_err(|_| conn::malformed("a stored webhook"))
}

impl WebhookRegistry for RedisStore {
    fn put_webhook(&self, endpoint: Endpoint) -> StoreFuture<'_, PutWebhook> {
        Box::pin(async move {
            self.open_now()?;
            let json = serde_json::to_string(&endpoint)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let mut conn = self.conn.clone();
            let reply: Value = conn::bounded(
                SCRIPTS
                    .put_webhook
                    .key(self.keys.webhooks())
                    .arg(&endpoint.id)
                    .arg(endpoint.account_id.as_deref().unwrap_or_default())
                    .arg(json)
                    .invoke_async(&mut conn),
            )
            .await?;
            let items = codec::array(&reply).ok_or_else(|| conn::malformed("put_webhook"))?;
            let kind = items.first().and_then(codec::text).unwrap_or_default();
            let stored = items.get(1).and_then(codec::text);
            match (kind.as_str(), stored) {
                ("taken", _) => Ok(PutWebhook::Taken),
                ("created", Some(text)) => Ok(PutWebhook::Created(parse_endpoint(&text)?)),
                ("updated", Some(text)) => Ok(PutWebhook::Updated(parse_endpoint(&text)?)),
                _ => Err(conn::malformed("put_webhook")),
            }
        })
    }

    fn get_webhook<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Endpoint>> {
        Box::pin(async move {
            self.open_now()?;
            let mut conn = self.conn.clone();
            let text: Option<String> = conn::bounded(conn.hget(self.keys.webhooks(), id)).await?;
            text.as_deref().map(parse_endpoint).transpose()
        })
    }

    fn list_webhooks<'a>(
        &'a self,
        scope: Option<Option<&'a str>>,
    ) -> StoreFuture<'a, Vec<Endpoint>> {
        Box::pin(async move {
            self.open_now()?;
            let mut all = self.all_webhooks().await?;
            if let Some(scope) = scope {
                all.retain(|e| e.account_id.as_deref() == scope);
            }
            Ok(all)
        })
    }

    fn rotate_webhook_secret<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
        secret: String,
        old_until_ms: i64,
    ) -> StoreFuture<'a, Option<Endpoint>> {
        Box::pin(async move {
            self.open_now()?;
            let mut conn = self.conn.clone();
            let text: Option<String> = conn::bounded(
                SCRIPTS
                    .rotate_webhook
                    .key(self.keys.webhooks())
                    .arg(id)
                    .arg(account_id.unwrap_or_default())
                    .arg(secret)
                    .arg(old_until_ms)
                    .invoke_async(&mut conn),
            )
            .await?;
            text.as_deref().map(parse_endpoint).transpose()
        })
    }

    fn delete_webhook<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.open_now()?;
            let mut conn = self.conn.clone();
            let deleted: u64 = conn::bounded(
                SCRIPTS
                    .delete_webhook
                    .key(self.keys.webhooks())
                    .arg(id)
                    .arg(account_id.unwrap_or_default())
                    .invoke_async(&mut conn),
            )
            .await?;
            Ok(deleted == 1)
        })
    }
}

impl Outbox for RedisStore {
    fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async move {
            self.open_now()?;
            let mut conn = self.conn.clone();
            let mut claimed = Vec::new();
            for account in self.outbox_accounts().await? {
                if claimed.len() >= limit {
                    break;
                }
                let keys = self.keys.account(&account);
                let texts: Vec<String> = conn::bounded(
                    SCRIPTS
                        .claim_outbox
                        .key(&keys.outbox)
                        .key(&keys.outbox_pending)
                        .arg(now_ms)
                        .arg(lease_ms)
                        .arg(limit - claimed.len())
                        .invoke_async(&mut conn),
                )
                .await?;
                claimed.extend(texts.iter().filter_map(|t| Record::parse(t)));
            }
            Ok(claimed)
        })
    }

    fn settle<'a>(&'a self, delivery: &'a Delivery, attempt: Attempt) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (status, next) = match attempt.next {
                Next::Delivered => (DeliveryStatus::Delivered, 0),
                Next::RetryAt(at) => (DeliveryStatus::Pending, at),
                Next::GiveUp => (DeliveryStatus::Failed, 0),
            };
            let args = [
                "attempt".into(),
                status.as_str().into(),
                next.to_string(),
                attempt
                    .status_code
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                attempt.error.unwrap_or_default(),
                attempt.latency_ms.to_string(),
            ];
            Ok(self
                .change(&delivery.account_id, &delivery.id, args)
                .await?
                .is_some())
        })
    }

    fn release<'a>(&'a self, delivery: &'a Delivery) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let args = [
                "release".into(),
                String::new(),
                "0".into(),
                String::new(),
                String::new(),
                "0".into(),
            ];
            Ok(self
                .change(&delivery.account_id, &delivery.id, args)
                .await?
                .is_some())
        })
    }

    fn deliveries<'a>(
        &'a self,
        endpoint_id: &'a str,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            self.open_now()?;
            let mut found: Vec<Delivery> = self
                .all_deliveries()
                .await?
                .into_iter()
                .filter(|d| d.endpoint_id == endpoint_id && status.is_none_or(|s| s == d.status))
                .collect();
            found.sort_by_key(|d| std::cmp::Reverse((d.created_ms, d.seq)));
            found.truncate(limit);
            Ok(found)
        })
    }

    fn retry_delivery<'a>(
        &'a self,
        endpoint_id: &'a str,
        delivery_id: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<Delivery>> {
        Box::pin(async move {
            self.open_now()?;
            let found = self
                .all_deliveries()
                .await?
                .into_iter()
                .find(|d| d.id == delivery_id && d.endpoint_id == endpoint_id);
            let Some(found) = found else { return Ok(None) };
            let args = [
                "retry".into(),
                String::new(),
                now_ms.to_string(),
                String::new(),
                String::new(),
                "0".into(),
            ];
            self.change(&found.account_id, delivery_id, args).await
        })
    }

    fn enqueue(&self, new: NewDelivery) -> StoreFuture<'_, Delivery> {
        Box::pin(async move {
            self.open_now()?;
            let mut conn = self.conn.clone();
            let now: (i64, i64) = conn::bounded(redis::cmd("TIME").query_async(&mut conn)).await?;
            let now_ms = now.0 * 1000 + now.1 / 1000;
            let record = Record {
                id: new_delivery_id(),
                endpoint_id: new.endpoint_id,
                account_id: new.account_id,
                seq: 0,
                event_id: new.event_id,
                event: new.event,
                body: new.body,
                status: DeliveryStatus::Pending.as_str().into(),
                attempts: 0,
                next_attempt_ms: now_ms,
                lease_until_ms: 0,
                last_status: None,
                last_error: None,
                last_latency_ms: None,
                created_ms: now_ms,
            };
            let text = serde_json::to_string(&record)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let account = key_account(&record.account_id);
            let keys = self.keys.account(account);
            // The account is listed first (a listed account with nothing
            // pending costs nothing), then the delivery is written in its
            // slot in one step.
            conn::bounded(conn.sadd::<_, _, u64>(self.keys.outbox_accounts(), account)).await?;
            conn::bounded(
                redis::pipe()
                    .atomic()
                    .hset(&keys.outbox, &record.id, &text)
                    .zadd(&keys.outbox_pending, &record.id, 0)
                    .query_async::<()>(&mut conn),
            )
            .await?;
            Record::parse(&text).ok_or_else(|| conn::malformed("a delivery"))
        })
    }

    fn outbox_depth(&self) -> StoreFuture<'_, OutboxDepth> {
        Box::pin(async move {
            self.open_now()?;
            let mut depth = OutboxDepth::default();
            for d in self.all_deliveries().await? {
                if d.status == DeliveryStatus::Pending {
                    depth.pending += 1;
                    depth.oldest_pending_ms = Some(
                        depth
                            .oldest_pending_ms
                            .map_or(d.created_ms, |o| o.min(d.created_ms)),
                    );
                }
            }
            Ok(depth)
        })
    }
}
