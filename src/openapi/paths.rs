//! One declaration per route and method of the hub's HTTP surface: its
//! parameters, body, credentials and every status it can answer, with the
//! error shape for each error status. These functions are never called;
//! `tests/openapi.rs` checks that this list and the router agree.
#![allow(dead_code)] // utoipa reads the attributes; the functions only carry them.

use crate::{
    api::bodies::{ErrorBody, EventsPage, MonitorList, ServiceStatus, Unchanged},
    api::ops::Stats,
    api::presence::PresenceList,
    event::{CredentialTest, CustomEvent, PhoneTest},
    heartbeat::{MonitorSpec, MonitorView, StatusOverride},
    store::{Receipt, Snapshot},
};
use utoipa::{IntoParams, ToSchema};

/// One Server-Sent Event of `/stream` (OpenAPI 3.1 describes an event stream
/// event by event).
#[derive(ToSchema)]
#[schema(as = ServerSentEvent)]
struct SseEvent {
    /// `snapshot`, an event name, or `statushub:disconnect`.
    event: String,
    /// The envelope (or the snapshot, or `{"reason", "reconnect"}`) as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
    /// The seq; absent on `statushub:disconnect`.
    #[schema(pattern = "^[0-9]+$")]
    id: Option<String>,
}

/// `{account}`. Ids (here and `{id}`): letters, digits, `_ - . @`, 1 to 128
/// bytes, not only dots (`.` and `..` would be path segments).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct AccountPath {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
}

/// `{account}` and a monitor's `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct MonitorPath {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "api-health"
    )]
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct PublishHeaders {
    /// A retry with the same key and body returns the first answer (with
    /// `Idempotent-Replayed: true`) and publishes nothing; the same key with
    /// another body is `409 idempotency_conflict`. Visible ASCII, 1 to 255.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct ReadQuery {
    /// Only events after this seq (default 0).
    #[param(minimum = 0, nullable = false)]
    since: Option<u64>,
    /// The epoch `since` belongs to; another than the account's answers `reset: true`.
    #[param(nullable = false)]
    epoch: Option<String>,
    /// Page size, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000, nullable = false)]
    limit: Option<u64>,
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// A client token, when it cannot go in `Authorization` (`EventSource`).
    #[param(nullable = false)]
    token: Option<String>,
    /// Resume after this seq; `Last-Event-ID` wins when both are given.
    #[param(minimum = 0, nullable = false)]
    since: Option<u64>,
    /// The epoch of that seq; another than the account's gets a reset snapshot.
    #[param(nullable = false)]
    epoch: Option<String>,
    /// A subscription filter as URL-encoded JSON, e.g. `[{"monitorIds":["m1"]}]`
    /// (docs/FILTERS.md): only matching events and snapshot entries are sent.
    #[param(nullable = false)]
    filter: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct StreamHeaders {
    /// What a reconnecting `EventSource` sends: the last `id:` it saw.
    #[param(rename = "Last-Event-ID", nullable = false, pattern = "^[0-9]+$")]
    last_event_id: Option<String>,
}

/// `POST /v1/accounts/{account}/phone-tests`
#[utoipa::path(post, path = "/v1/accounts/{account}/phone-tests", tag = "publish",
    summary = "Record a phone connection test; emits phone_status_changed",
    params(AccountPath, PublishHeaders),
    request_body(content = PhoneTest, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and sequenced (or a replay)", body = Receipt,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "Store unavailable; nothing published", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn phone_tests() {}

/// `POST /v1/accounts/{account}/credential-tests`
#[utoipa::path(post, path = "/v1/accounts/{account}/credential-tests", tag = "publish",
    summary = "Record a credential test; emits status_sync",
    params(AccountPath, PublishHeaders),
    request_body(content = CredentialTest, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and sequenced (or a replay); `servicesNotified`: the webhook endpoints it is queued for", body = crate::api::webhooks::NotifiedReceipt,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "Store unavailable; nothing published", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn credential_tests() {}

/// `POST /v1/accounts/{account}/events`
#[utoipa::path(post, path = "/v1/accounts/{account}/events", tag = "publish",
    summary = "Publish a custom event",
    params(AccountPath, PublishHeaders),
    request_body(content = CustomEvent, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored and sequenced (or a replay)", body = Receipt,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "Store unavailable; nothing published", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn publish_event() {}

/// `GET /v1/accounts/{account}/events`
#[utoipa::path(get, path = "/v1/accounts/{account}/events", tag = "read",
    summary = "Retained events after `since`, oldest first",
    params(AccountPath, ReadQuery),
    responses(
        (status = 200, description = "One page", body = EventsPage),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn events_since() {}

/// `GET /v1/accounts/{account}/status`
#[utoipa::path(get, path = "/v1/accounts/{account}/status", tag = "read",
    summary = "The account's snapshot",
    params(AccountPath, TokenQuery),
    responses(
        (status = 200, description = "The snapshot", body = Snapshot),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn status() {}

/// `GET /v1/accounts/{account}/presence`
#[utoipa::path(get, path = "/v1/accounts/{account}/presence", tag = "read",
    summary = "The account's live connections on every node, and the seq each is at",
    params(AccountPath, TokenQuery),
    responses(
        (status = 200, description = "The connections", body = PresenceList),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn presence() {}

/// `GET /v1/accounts/{account}/stream`
#[utoipa::path(get, path = "/v1/accounts/{account}/stream", tag = "realtime",
    summary = "Server-Sent Events: the snapshot (or the missed events), then live events",
    description = "Each event is `id: {seq}`, `event: {name}`, `data: {envelope JSON}`; the \
snapshot is `event: snapshot`. Before the server ends a stream it sends `event: statushub:disconnect` \
with `data: {\"reason\", \"reconnect\"}`. The stream does not end by itself.",
    params(AccountPath, StreamQuery, StreamHeaders),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "Bad path, query or Last-Event-ID", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 429, description = "Too many connections from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "At capacity or shutting down", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn stream() {}

/// `GET /v1/accounts/{account}/monitors`
#[utoipa::path(get, path = "/v1/accounts/{account}/monitors", tag = "monitors",
    summary = "The account's monitors (header values redacted for client tokens)",
    params(AccountPath, TokenQuery),
    responses(
        (status = 200, description = "The monitors", body = MonitorList),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn monitor_list() {}

/// `GET /v1/accounts/{account}/monitors/{id}`
#[utoipa::path(get, path = "/v1/accounts/{account}/monitors/{id}", tag = "monitors",
    summary = "One monitor (header values redacted for client tokens)",
    params(MonitorPath, TokenQuery),
    responses(
        (status = 200, description = "The monitor", body = MonitorView),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
fn monitor_get() {}

/// `PUT /v1/accounts/{account}/monitors/{id}`
#[utoipa::path(put, path = "/v1/accounts/{account}/monitors/{id}", tag = "monitors",
    summary = "Register or replace a monitor",
    params(MonitorPath),
    request_body(content = MonitorSpec, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = MonitorView),
        (status = 201, description = "Registered", body = MonitorView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 409, description = "Too many monitors, or a conflicting change", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn monitor_put() {}

/// `DELETE /v1/accounts/{account}/monitors/{id}`
#[utoipa::path(delete, path = "/v1/accounts/{account}/monitors/{id}", tag = "monitors",
    summary = "Delete a monitor; emits monitor_removed",
    params(MonitorPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn monitor_delete() {}

/// `POST /v1/accounts/{account}/monitors/{id}/status`
#[utoipa::path(post, path = "/v1/accounts/{account}/monitors/{id}/status", tag = "monitors",
    summary = "Set a monitor's health by hand; emits health_changed when it changes",
    params(MonitorPath),
    request_body(content = StatusOverride, content_type = "application/json"),
    responses(
        (status = 200, description = "The monitor already had that health", body = Unchanged),
        (status = 201, description = "Changed: the health_changed event's receipt", body = Receipt),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 409, description = "A conflicting change", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn monitor_status() {}

/// `GET /ws`
#[utoipa::path(get, path = "/ws", tag = "realtime",
    summary = "Raw WebSocket upgrade",
    description = "Frames are JSON text (README, \"Raw WebSocket\"). The token may also come as \
the first frame `{\"type\":\"auth\",\"token\":…,\"since\":N}`; a bad token still upgrades and is \
answered with an `error` frame and a close code, since browsers cannot read a refused upgrade.",
    params(StreamQuery),
    responses(
        (status = 101, description = "Upgraded to a WebSocket"),
        (status = 400, description = "Not a WebSocket upgrade request, or a bad query", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        (status = 429, description = "Too many connections from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "At capacity or shutting down", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
    security((), ("clientToken" = []), ("queryToken" = [])))]
fn websocket() {}

/// `GET /healthz`
#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process serves requests", body = ServiceStatus)))]
fn healthz() {}

/// `GET /readyz`
#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness: the store answers",
    responses(
        (status = 200, description = "Ready", body = ServiceStatus),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
fn readyz() {}

/// `GET /metrics`
#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus text exposition (version 0.0.4)",
    responses((status = 200, description = "The figures", content_type = "text/plain", body = String)))]
fn metrics() {}

/// `GET /v1/stats`
#[utoipa::path(get, path = "/v1/stats", tag = "operations", summary = "The same figures as JSON",
    responses((status = 200, description = "The figures", body = Stats)))]
fn stats() {}

/// `GET /`
#[utoipa::path(get, path = "/", tag = "operations",
    summary = "The live status page; `/?token=…` opens it signed in",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 304, description = "Not modified (`If-None-Match`)"),
    ))]
fn page() {}

/// `GET /assets/{name}`
#[utoipa::path(get, path = "/assets/{name}", tag = "operations",
    summary = "The status page's scripts and styles",
    params(("name" = String, Path, description = "`page.css`, `app.js` or `statushub-client.js`")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript"), (String = "text/css"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, description = "No such asset", body = ErrorBody),
    ))]
fn asset() {}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations", summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
fn openapi_json() {}
