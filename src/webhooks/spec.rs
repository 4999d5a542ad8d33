//! What the webhook API takes and shows: the endpoint body and its
//! validation, and the views of endpoints and deliveries (never a secret,
//! except in the create answer).

use crate::store::{Delivery, DeliveryStatus, Endpoint};
use serde::{Deserialize, Serialize};

/// Longest accepted endpoint URL.
const MAX_URL: usize = 2048;
/// Most subscription patterns per endpoint.
const MAX_EVENTS: usize = 64;
const MAX_DESCRIPTION: usize = 500;

/// `PUT …/webhooks/{id}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// `http` or `https` URL the events are POSTed to.
    #[schema(example = "https://orders.internal/hooks/statushub")]
    pub url: String,
    /// Event names, or prefixes ending in `*` (`*` alone: every event).
    #[schema(example = json!(["status_sync", "deploy.*"]))]
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Default true; a disabled endpoint gets no new deliveries.
    pub enabled: Option<bool>,
}

impl EndpointSpec {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("url must be an absolute http or https URL".into());
        }
        if self.url.len() > MAX_URL {
            return Err(format!("url is longer than {MAX_URL} bytes"));
        }
        if self.events.is_empty() || self.events.len() > MAX_EVENTS {
            return Err(format!(
                "events must list 1 to {MAX_EVENTS} event names or prefixes"
            ));
        }
        for pattern in &self.events {
            if !valid_pattern(pattern) {
                return Err(format!(
                    "events: {pattern:?} is neither an event name (^[a-z][a-z0-9_.:-]{{0,63}}$) nor one followed by '*', nor '*'"
                ));
            }
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(format!(
                "description is longer than {MAX_DESCRIPTION} characters"
            ));
        }
        Ok(())
    }
}

/// An event name, a prefix of one followed by `*`, or `*`.
pub fn valid_pattern(pattern: &str) -> bool {
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    if name.is_empty() {
        return pattern == "*";
    }
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// An endpoint id: 1 to 64 of letters, digits, `_ - .`, not only dots.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !id.bytes().all(|b| b == b'.')
}

/// An endpoint as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub id: String,
    /// The one account it receives events of; `null`: every account.
    pub account_id: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// `webhook_disabled` when the hub disabled it after 24 h of failed
    /// deliveries; a `PUT` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The signing secret (`whsec_…`): in the create answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointView {
    pub fn of(endpoint: Endpoint, show_secret: bool) -> Self {
        EndpointView {
            secret: show_secret.then_some(endpoint.secret),
            id: endpoint.id,
            account_id: endpoint.account_id,
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            enabled: endpoint.enabled,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            note: endpoint.note,
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub webhooks: Vec<EndpointView>,
}

/// One delivery as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub endpoint_id: String,
    pub account_id: String,
    /// The event's seq (0 for `webhook.test`).
    pub seq: u64,
    /// The event id, sent as `webhook-id`.
    pub event_id: String,
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    /// The HTTP status of the last attempt, when an answer came.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub created_at: String,
}

impl DeliveryView {
    pub fn of(d: Delivery) -> Self {
        DeliveryView {
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| at(d.next_attempt_ms)),
            created_at: at(d.created_ms),
            id: d.id,
            endpoint_id: d.endpoint_id,
            account_id: d.account_id,
            seq: d.seq,
            event_id: d.event_id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub endpoint_id: String,
    pub deliveries: Vec<DeliveryView>,
}

/// Milliseconds since the epoch as RFC 3339.
pub fn at(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(crate::event::rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_ids() {
        for good in ["*", "status_sync", "deploy.*", "a", "webhook.test"] {
            assert!(valid_pattern(good), "{good}");
        }
        for bad in ["", "**", "Deploy", "de*ploy", "1abc", "a b", "*a"] {
            assert!(!valid_pattern(bad), "{bad}");
        }
        assert!(valid_id("orders-1.v2"));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
