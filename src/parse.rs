//! One entry point per parser that takes bytes from outside the hub, each
//! running the very code a request or frame goes through, without a server.
//!
//! They exist for the coverage-guided fuzzers in `fuzz/` (docs/FUZZING.md)
//! and for regression tests of what those fuzzers find: each answers `Ok`
//! with what was parsed, or `Err` with the message the client would get, and
//! none may panic on any input.

use crate::{
    api::{self, ReadQuery},
    auth::{Claims, Jwt},
    event::{self, CredentialTest, CustomEvent, PhoneTest, Report},
    heartbeat::{MonitorSpec, SpecLimits, StatusOverride},
    subscribe,
    transport::{
        socketio::ConnectAuth,
        sse::{self, StreamQuery},
        wire::{self, WsClientFrame},
    },
};
use axum::{
    extract::Query,
    http::{HeaderMap, HeaderValue, Uri},
};
use serde::de::DeserializeOwned;
use std::time::Duration;

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

/// A report body (`phone-tests`, `credential-tests`): parsed, validated and
/// turned into the event's data as the store would.
fn report<R: Report>(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let report: R = json(bytes)?;
    report.validate()?;
    let _ = report.key();
    Ok(report.to_data(None, "2026-01-01T00:00:00Z"))
}

/// `POST /v1/accounts/{account}/phone-tests` body; the event data on success.
pub fn phone_test(bytes: &[u8]) -> Result<serde_json::Value, String> {
    report::<PhoneTest>(bytes)
}

/// `POST /v1/accounts/{account}/credential-tests` body; the event data on success.
pub fn credential_test(bytes: &[u8]) -> Result<serde_json::Value, String> {
    report::<CredentialTest>(bytes)
}

/// `POST /v1/accounts/{account}/events` body: the event name and its data
/// exactly as they would be stored.
pub fn custom_event(bytes: &[u8]) -> Result<(String, String), String> {
    let CustomEvent { event: name, data } = json(bytes)?;
    event::check_custom_name(&name)?;
    Ok((name, data.0.get().to_owned()))
}

/// `PUT /v1/accounts/{account}/monitors/{id}` body, validated with the
/// default minimum interval.
pub fn monitor_spec(bytes: &[u8]) -> Result<MonitorSpec, String> {
    json::<MonitorSpec>(bytes)?.validated(&SpecLimits {
        min_interval: Duration::from_secs(1),
    })
}

/// `POST /v1/accounts/{account}/monitors/{id}/status` body.
pub fn status_override(bytes: &[u8]) -> Result<StatusOverride, String> {
    json(bytes)
}

/// A `/ws` client text frame (`auth`, `subscribe`, `ping`), its `since` and
/// account id checked as the subscribe path checks them: its type.
pub fn ws_client_frame(text: &str) -> Result<&'static str, String> {
    match wire::ws_client_frame(text)? {
        WsClientFrame::Auth {
            since,
            epoch,
            filter,
            ..
        } => subscribe::parse_start(since, epoch, filter)
            .map(|_| "auth")
            .map_err(|e| e.to_string()),
        WsClientFrame::Subscribe {
            account_id,
            since,
            epoch,
            filter,
        } => subscribe::SubscribeRequest::parse(account_id, since, epoch)
            .and_then(|req| req.with_filter(filter))
            .map(|_| "subscribe")
            .map_err(|e| e.to_string()),
        WsClientFrame::Ping => Ok("ping"),
    }
}

/// A Socket.IO CONNECT packet's auth payload (`{token, since, epoch, filter}`) as JSON:
/// the `since` to resume from (its `epoch` and `filter` checked too), and the token checked with `jwt` (both are
/// parsed whatever the other's outcome, so both are exercised).
pub fn socketio_auth(
    jwt: &Jwt,
    bytes: &[u8],
) -> (Result<Option<u64>, String>, Result<Claims, String>) {
    let auth: ConnectAuth = match json(bytes) {
        Ok(auth) => auth,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    let (since, epoch) = (auth.since.as_deref(), auth.epoch.as_deref());
    let start = subscribe::parse_start(since, epoch, auth.filter.as_deref());
    let since = start.map(|(r, _)| r.since).map_err(|e| e.to_string());
    let claims = client_token(jwt, auth.token.as_deref().unwrap_or_default());
    (since, claims)
}

/// A client token (JWT) as any transport verifies it.
pub fn client_token(jwt: &Jwt, token: &str) -> Result<Claims, String> {
    jwt.verify(token).map_err(|e| e.to_string())
}

fn query<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    let uri: Uri = format!("/?{query}")
        .parse()
        .map_err(|e| format!("not a URL query: {e}"))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| e.body_text())
}

/// The query of `GET /v1/accounts/{account}/events` (`since`, `limit`,
/// `token`): the page's `since` and `limit`.
pub fn events_query(raw: &str) -> Result<(u64, usize), String> {
    let read: ReadQuery = query(raw)?;
    api::page_bounds(&read).map_err(|e| e.to_string())
}

/// Where an SSE stream resumes: its query (`since`, `token`, `filter` checked) and the
/// `Last-Event-ID` header's raw bytes, which win over `since`.
pub fn sse_resume(raw_query: &str, last_event_id: Option<&[u8]>) -> Result<Option<u64>, String> {
    let stream: StreamQuery = query(raw_query)?;
    let mut headers = HeaderMap::new();
    if let Some(bytes) = last_event_id {
        let value =
            HeaderValue::from_bytes(bytes).map_err(|e| format!("not a header value: {e}"))?;
        headers.insert("last-event-id", value);
    }
    if let Some(filter) = stream.filter.as_deref() {
        subscribe::parse_filter_text(filter).map_err(|e| e.to_string())?;
    }
    sse::resume_point(&headers, stream.since).map_err(|e| e.to_string())
}
