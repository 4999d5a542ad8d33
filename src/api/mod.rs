//! The HTTP API of the contract: backend publishes, reads of an account's
//! state and history, and the operator's health endpoints.
//!
//! Handlers only parse, authorize and validate; every publish goes through
//! [`Hub::publish`], so HTTP has no path of its own to the store.

pub mod bodies;
mod error;
mod history;
mod monitors;
pub(crate) mod ops;
pub mod presence;
mod syncs;
pub(crate) mod webhooks;

pub use error::ApiError;

use crate::{
    auth::{self, ApiKeys, Jwt},
    event::{self, CredentialTest, CustomEvent, PhoneTest, Report},
    heartbeat::Heartbeat,
    hub::Hub,
    rate_limit::PublishLimiter,
    store::{Appended, Body, EntryChange, Idempotency},
    subscribe,
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
        rejection::PathRejection,
    },
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bodies::{EventsPage, ServiceStatus};
use serde::{Deserialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Page size of `events?since` unless `limit` says otherwise, and its maximum.
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub jwt: Jwt,
    pub keys: ApiKeys,
    pub max_body_bytes: usize,
    pub heartbeat: Arc<Heartbeat>,
    /// Per-API-key token buckets for publishes.
    pub publish_limit: Arc<PublishLimiter>,
    /// Cross-node fan-out figures (Redis mode only).
    pub fanout: Option<Arc<crate::store::FanoutStats>>,
    /// Every monitor check, for history, uptime and stats.
    pub history: Arc<dyn crate::store::MonitorHistory>,
    /// Tracked sync jobs (`/v1/accounts/{account}/syncs`).
    pub jobs: Arc<crate::jobs::Jobs>,
    /// This node's id, store kind, leases and Redis round trip.
    pub node: Arc<crate::cluster::Node>,
    /// Live connections of every node (`GET …/presence`).
    pub presence: Arc<crate::presence::Presence>,
    /// Outbound webhooks: endpoints, deliveries, the test event.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.max_body_bytes;
    Router::new()
        .route(
            "/v1/accounts/{account}/phone-tests",
            post(report::<PhoneTest>),
        )
        .route(
            "/v1/accounts/{account}/credential-tests",
            post(report::<CredentialTest>),
        )
        .route(
            "/v1/accounts/{account}/events",
            post(custom_event).get(events_since),
        )
        .route("/v1/accounts/{account}/status", get(status))
        .merge(monitors::routes())
        .merge(history::routes())
        .merge(syncs::routes())
        .merge(presence::routes())
        .merge(webhooks::routes())
        .route(
            "/healthz",
            get(|| async { Json(ServiceStatus { status: "ok" }) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(ops::metrics))
        .route("/v1/stats", get(ops::stats))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A JSON body parsed strictly, keeping its bytes for the idempotency
/// fingerprint. Every endpoint that takes a body takes it through here, so
/// they all share one rule: a JSON `Content-Type` (or none), then JSON any
/// client can read back ([`event::json`]), then the endpoint's own type.
struct JsonBody<T> {
    value: T,
    raw: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_json_content_type(req.headers())?;
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.max_body_bytes)
            } else {
                ApiError::bad_request(format!("cannot read body: {}", e.body_text()))
            }
        })?;
        event::json::check(&raw, "body")
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        let value = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        Ok(JsonBody { value, raw })
    }
}

/// `application/json` (any parameters, any case) or an `application/*+json`
/// type; a request without `Content-Type` is read as JSON too. Anything else
/// (a form, `text/plain`) is 415: it was not meant for this API.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "request bodies are JSON: send Content-Type: application/json, not {:?}",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

/// The `{account}` path segment, validated.
fn account(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(account) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !event::valid_account_id(&account) {
        return Err(ApiError::bad_request(format!(
            "invalid account id {account:?}"
        )));
    }
    Ok(account)
}

/// Backend endpoints: only an API key will do. Returns which one.
fn require_service(state: &AppState, headers: &HeaderMap) -> Result<usize, ApiError> {
    let credential = bearer(headers)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api key>"))?;
    state
        .keys
        .identify(credential)
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))
}

/// Publish endpoints: an API key within its rate limit.
async fn require_publisher(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = require_service(state, headers)?;
    state.publish_limit.check(key).await.map_err(|retry_after| {
        state.hub.metrics.rate_limited();
        ApiError::rate_limited(
            "publish rate limit of this API key exceeded; retry after Retry-After seconds",
            retry_after,
        )
    })
}

/// Read endpoints: an API key, or a client token for this very account
/// (an admin token for any account).
fn require_reader(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    account: &str,
) -> Result<(), ApiError> {
    authorize_reader(&state.jwt, &state.keys, headers, query_token, account)
}

/// The read rule itself, shared with the SSE stream.
pub(crate) fn authorize_reader(
    jwt: &Jwt,
    keys: &ApiKeys,
    headers: &HeaderMap,
    query_token: Option<&str>,
    account: &str,
) -> Result<(), ApiError> {
    let credential = bearer(headers).or(query_token).ok_or_else(|| {
        ApiError::unauthorized("missing credentials: an API key or a client token")
    })?;
    if keys.accepts(credential) {
        return Ok(());
    }
    // A credential that is not JWT-shaped was meant as an API key: answer
    // about API keys, not with a token parsing error.
    if !auth::looks_like_jwt(credential) {
        return Err(ApiError::unauthorized("invalid API key"));
    }
    let claims = jwt.verify(credential)?;
    if claims.may_read(account) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this token may not read account {account}"
        )))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(auth::bearer)
}

fn idempotency(
    headers: &HeaderMap,
    route: &str,
    raw: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(raw);
    Ok(Some(Idempotency {
        key: key.to_owned(),
        fingerprint: hex::encode(hasher.finalize()),
    }))
}

/// 201 with the receipt; a replay says so in `Idempotent-Replayed`.
fn created(appended: Appended) -> Response {
    let replayed = matches!(appended, Appended::Replayed(_));
    let mut response = (StatusCode::CREATED, Json(appended.receipt().clone())).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

async fn report<R: Report>(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<R>,
) -> Result<Response, ApiError> {
    let account = account(path)?;
    require_publisher(&state, &headers).await?;
    let idem = idempotency(&headers, R::ROUTE, &body.raw)?;
    let report = body.value;
    report.validate().map_err(ApiError::bad_request)?;
    let key = report.key();
    let now = event::rfc3339(event::now());
    let derive = Arc::new(move |previous: Option<&serde_json::Value>| {
        EntryChange::kept(report.to_data(previous, &now))
    });
    let body = Body::Entry {
        section: R::SECTION,
        key,
        derive,
    };
    let appended = state.hub.publish(&account, R::EVENT, body, idem).await?;
    if R::EVENT == event::STATUS_SYNC {
        return webhooks::created_with_services(&state, appended).await;
    }
    Ok(created(appended))
}

async fn custom_event(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<CustomEvent>,
) -> Result<Response, ApiError> {
    let account = account(path)?;
    require_publisher(&state, &headers).await?;
    let idem = idempotency(&headers, "events", &body.raw)?;
    let CustomEvent { event: name, data } = body.value;
    event::check_custom_name(&name).map_err(ApiError::bad_request)?;
    Ok(created(
        state
            .hub
            .publish(&account, &name, Body::Fixed(data.0), idem)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    since: Option<u64>,
    epoch: Option<String>,
    limit: Option<usize>,
    token: Option<String>,
}

/// An authorized read of one account: the path, the query and the
/// credentials (API key, or the account's own or an admin token) checked.
struct AccountRead {
    account: String,
    query: ReadQuery,
}

impl FromRequestParts<AppState> for AccountRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let account = account(Path::<String>::from_request_parts(parts, state).await)?;
        let Query(query) = Query::<ReadQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        require_reader(state, &parts.headers, query.token.as_deref(), &account)?;
        Ok(AccountRead { account, query })
    }
}

/// `since` and `limit` of an `events` read, defaults applied and checked.
pub(crate) fn page_bounds(query: &ReadQuery) -> Result<(u64, usize), ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok((query.since.unwrap_or(0), limit))
}

async fn events_since(
    State(state): State<AppState>,
    read: AccountRead,
) -> Result<Response, ApiError> {
    let (since, limit) = page_bounds(&read.query)?;
    let epoch = read.query.epoch.as_deref().map(subscribe::parse_epoch_text);
    let epoch = epoch
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut history = state.hub.history(&read.account, since, limit).await?;
    // The contract's epoch rule: seqs of another epoch name other events,
    // so the reader starts over (from the snapshot) and gets none of them.
    if epoch.is_some_and(|e| e != history.epoch) {
        history.events.clear();
        history.complete = false;
    }
    let last = history.events.last().map_or(since, |e| e.seq);
    Ok(Json(EventsPage {
        has_more: last < history.head && history.events.len() == limit,
        account_id: read.account,
        seq: history.head,
        epoch: history.epoch,
        reset: !history.complete,
        events: history.events,
    })
    .into_response())
}

async fn status(State(state): State<AppState>, read: AccountRead) -> Result<Response, ApiError> {
    Ok(Json(state.hub.snapshot(&read.account).await?).into_response())
}

async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.hub.ready().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store is unavailable",
        )
    })?;
    Ok(Json(ServiceStatus { status: "ready" }).into_response())
}
