//! The webhook registry in Redis: one hash of every endpoint (id → JSON)
//! under the deployment's prefix; puts and deletes are Lua scripts so the
//! scope check and the write are one step.

use super::{RedisStore, codec, conn, scripts::SCRIPTS};
use crate::store::{
    Attempt, Delivery, DeliveryStatus, Endpoint, NewDelivery, Outbox, OutboxDepth, PutWebhook,
    StoreError, StoreFuture, WebhookRegistry,
};
use redis::{AsyncCommands, Value};
use std::collections::HashMap;

impl RedisStore {
    /// Every endpoint, by id (what the append path matches events against).
    pub(super) async fn all_webhooks(&self) -> Result<Vec<Endpoint>, StoreError> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, String> =
            conn::bounded(conn.hgetall(self.keys.webhooks())).await?;
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

fn not_built() -> StoreError {
    StoreError::Unavailable("the webhook outbox is not built on Redis yet".into())
}

/// Not built yet on Redis: every call fails as unavailable (the server does
/// not start the dispatcher in cluster mode).
impl Outbox for RedisStore {
    fn claim_due(&self, _: i64, _: i64, _: usize) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async { Err(not_built()) })
    }

    fn settle<'a>(&'a self, _: &'a str, _: Attempt) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(not_built()) })
    }

    fn release<'a>(&'a self, _: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(not_built()) })
    }

    fn deliveries<'a>(
        &'a self,
        _: &'a str,
        _: Option<DeliveryStatus>,
        _: usize,
    ) -> StoreFuture<'a, Vec<Delivery>> {
        Box::pin(async { Err(not_built()) })
    }

    fn retry_delivery<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: i64,
    ) -> StoreFuture<'a, Option<Delivery>> {
        Box::pin(async { Err(not_built()) })
    }

    fn enqueue(&self, _: NewDelivery) -> StoreFuture<'_, Delivery> {
        Box::pin(async { Err(not_built()) })
    }

    fn outbox_depth(&self) -> StoreFuture<'_, OutboxDepth> {
        Box::pin(async { Ok(OutboxDepth::default()) })
    }
}
