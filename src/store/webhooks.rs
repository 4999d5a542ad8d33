//! The webhook roles: the registry of endpoints backend services subscribed
//! ([`WebhookRegistry`]) and the outbox of deliveries owed to them
//! ([`Outbox`]).
//!
//! The outbox is written by `append` itself: in the same atomic step that
//! sequences an event, the store matches the event against the registry
//! ([`subscribed`]), writes one delivery per matched endpoint, and (for
//! `status_sync`) writes the same ids into the event's `servicesNotified`
//! ([`fill_services_notified`]). An event committed is therefore an event
//! whose deliveries are committed, and what `servicesNotified` says is exactly
//! what is queued. The `webhooks` module reads the outbox and delivers; it
//! never sees the hub's fan-out.

use super::StoreFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A subscribed endpoint as the store keeps it. `account_id: None` receives
/// the events of every account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub account_id: Option<String>,
    pub url: String,
    /// Event names, or prefixes ending in `*` (`*` alone: every event).
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// `whsec_<base64>`; never shown again after the create answer.
    pub secret: String,
    pub created_at: String,
    pub updated_at: String,
    /// Secrets replaced by a rotation, still signing until their time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<PreviousSecret>,
    /// Why the hub changed it (`webhook_disabled`); cleared by a put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A rotated-out secret and until when it still signs (ms since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    pub secret: String,
    pub until_ms: i64,
}

/// Rotated-out secrets kept at most (the newest).
pub const MAX_PREVIOUS_SECRETS: usize = 3;

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutWebhook {
    /// Stored as given.
    Created(Endpoint),
    /// Replaced the settings; the stored secret and `created_at` were kept
    /// (the returned endpoint holds them).
    Updated(Endpoint),
    /// The id belongs to an endpoint of another scope; nothing stored.
    Taken,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempted when due.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up after the retry window.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One event owed to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub account_id: String,
    /// The event's seq; 0 for a `webhook.test` delivery.
    pub seq: u64,
    pub event_id: String,
    pub event: String,
    /// The envelope as POSTed (the SSE `data:` JSON).
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When a pending delivery is due (ms since the epoch).
    pub next_attempt_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub created_ms: i64,
}

/// A delivery made outside the log (`webhook.test`).
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub endpoint_id: String,
    pub account_id: String,
    pub event_id: String,
    pub event: String,
    pub body: String,
}

/// How an attempt ended and what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status, when an answer came.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub next: Next,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
    GiveUp,
}

/// Outbox figures for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    pub pending: u64,
    /// `created_ms` of the oldest pending delivery.
    pub oldest_pending_ms: Option<i64>,
}

/// The endpoint registry.
///
/// Ordering and durability as for [`MonitorStore`](super::MonitorStore):
/// a write's `Ok` is durable, and an append started after it sees it.
/// Ids are unique across scopes.
pub trait WebhookRegistry: Send + Sync + 'static {
    /// Creates the endpoint, or replaces the settings of the one with this
    /// id in the same scope (keeping its secret and `created_at`).
    fn put_webhook(&self, endpoint: Endpoint) -> StoreFuture<'_, PutWebhook>;

    fn get_webhook<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Endpoint>>;

    /// The endpoints of one scope (`Some(Some(account))` one account's,
    /// `Some(None)` the all-accounts ones) or every endpoint (`None`), by id.
    fn list_webhooks<'a>(
        &'a self,
        scope: Option<Option<&'a str>>,
    ) -> StoreFuture<'a, Vec<Endpoint>>;

    /// Replaces the endpoint's secret with `secret`; the old one keeps
    /// signing until `old_until_ms` (with at most
    /// [`MAX_PREVIOUS_SECRETS`] kept). `None` when there is no such endpoint
    /// in that scope.
    fn rotate_webhook_secret<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
        secret: String,
        old_until_ms: i64,
    ) -> StoreFuture<'a, Option<Endpoint>>;

    /// Deletes the endpoint of that scope and id. False when there was
    /// none. Its pending deliveries are never sent: SQLite drops them at
    /// once; on Redis they fail ("the endpoint was deleted") when next
    /// claimed.
    fn delete_webhook<'a>(
        &'a self,
        account_id: Option<&'a str>,
        id: &'a str,
    ) -> StoreFuture<'a, bool>;
}

/// The deliveries owed, written by `append` (see the module docs).
///
/// Ordering: per endpoint and account, [`Outbox::claim_due`] hands out only
/// the oldest pending delivery (lowest seq), so a later event waits while an
/// earlier one is retried. A claim is atomic and holds the delivery for the
/// lease, so two dispatchers (two nodes) never hold the same one; an expired
/// lease (a node died mid-attempt) makes it claimable again: at least once.
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` due deliveries, each the head of its endpoint
    /// and account, until `now_ms + lease_ms`.
    fn claim_due(&self, now_ms: i64, lease_ms: i64, limit: usize)
    -> StoreFuture<'_, Vec<Delivery>>;

    /// Records an attempt on a claimed delivery and frees its lease.
    fn settle<'a>(&'a self, delivery: &'a Delivery, attempt: Attempt) -> StoreFuture<'a, bool>;

    /// Frees a claim without an attempt (the dispatcher was busy).
    fn release<'a>(&'a self, delivery: &'a Delivery) -> StoreFuture<'a, bool>;

    /// The endpoint's deliveries, newest first.
    fn deliveries<'a>(
        &'a self,
        endpoint_id: &'a str,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Delivery>>;

    /// Makes a delivery of this endpoint pending and due at `now_ms`.
    /// `None` when there is no such delivery.
    fn retry_delivery<'a>(
        &'a self,
        endpoint_id: &'a str,
        delivery_id: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Option<Delivery>>;

    /// Queues a delivery that is not an event of the log (`webhook.test`).
    fn enqueue(&self, delivery: NewDelivery) -> StoreFuture<'_, Delivery>;

    /// Pending deliveries and the oldest one's age.
    fn outbox_depth(&self) -> StoreFuture<'_, OutboxDepth>;
}

/// `endpoint` after a rotation to `secret` (the old one signing until
/// `old_until_ms`): the one rule both stores apply.
pub fn rotated(mut endpoint: Endpoint, secret: String, old_until_ms: i64) -> Endpoint {
    let old = std::mem::replace(&mut endpoint.secret, secret);
    endpoint.previous_secrets.insert(
        0,
        PreviousSecret {
            secret: old,
            until_ms: old_until_ms,
        },
    );
    endpoint.previous_secrets.truncate(MAX_PREVIOUS_SECRETS);
    endpoint
}

/// Whether `event` matches one subscription pattern: a name, a prefix
/// ending in `*`, or `*`.
pub fn pattern_matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event.starts_with(prefix),
        None => pattern == event,
    }
}

/// The ids of the enabled endpoints, among `endpoints`, subscribed to
/// `event` of `account_id`, sorted.
pub fn subscribed<'e>(
    endpoints: impl IntoIterator<Item = &'e Endpoint>,
    account_id: &str,
    event: &str,
) -> Vec<String> {
    let mut ids: Vec<String> = endpoints
        .into_iter()
        .filter(|e| e.enabled)
        .filter(|e| e.account_id.as_deref().is_none_or(|a| a == account_id))
        .filter(|e| e.events.iter().any(|p| pattern_matches(p, event)))
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `status_sync` carries the ids it is queued for in `servicesNotified`
/// (the contract); other events are left as they are.
pub fn fill_services_notified(event: &str, data: &mut Value, ids: &[String]) {
    if event != crate::event::STATUS_SYNC {
        return;
    }
    if let Some(object) = data.as_object_mut() {
        object.insert(
            "servicesNotified".into(),
            Value::Array(ids.iter().cloned().map(Value::String).collect()),
        );
    }
}

/// A new delivery id.
pub fn new_delivery_id() -> String {
    format!("dlv_{}", hex::encode(rand::random::<[u8; 12]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str, account: Option<&str>, events: &[&str], enabled: bool) -> Endpoint {
        Endpoint {
            id: id.into(),
            account_id: account.map(Into::into),
            url: "http://127.0.0.1:1/".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            description: None,
            enabled,
            secret: "whsec_x".into(),
            created_at: String::new(),
            updated_at: String::new(),
            previous_secrets: vec![],
            note: None,
        }
    }

    #[test]
    fn subscriptions_match_by_scope_name_and_prefix() {
        let all = [
            endpoint("b-all", None, &["status_sync"], true),
            endpoint("a-acme", Some("acme"), &["deploy.*"], true),
            endpoint("c-other", Some("other"), &["*"], true),
            endpoint("d-off", None, &["*"], false),
        ];
        assert_eq!(subscribed(&all, "acme", "status_sync"), vec!["b-all"]);
        assert_eq!(subscribed(&all, "acme", "deploy.done"), vec!["a-acme"]);
        assert_eq!(subscribed(&all, "other", "deploy.done"), vec!["c-other"]);
        assert!(subscribed(&all, "acme", "deployed").is_empty());
    }

    #[test]
    fn only_status_sync_carries_services_notified() {
        let ids = vec!["a".to_string()];
        let mut data = serde_json::json!({"servicesNotified": []});
        fill_services_notified("status_sync", &mut data, &ids);
        assert_eq!(data["servicesNotified"], serde_json::json!(["a"]));
        let mut other = serde_json::json!({});
        fill_services_notified("deploy", &mut other, &ids);
        assert_eq!(other, serde_json::json!({}));
    }
}
