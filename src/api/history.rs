//! `/v1/accounts/{account}/monitors/{id}/history`, `…/{id}/uptime` and
//! `…/monitors/stats`: what the heartbeat kept of every check, for
//! dashboards. Readers as for the monitor routes (an API key or the
//! account's token); the figures are computed by [`crate::uptime`].

use super::{AppState, monitors::monitor_path, require_reader};
use crate::{
    api::ApiError,
    event,
    heartbeat::{Health, HeartbeatError},
    store::StoreError,
    uptime::{self, DAY_MS, MonitorStats},
};
use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{account}/monitors/stats", get(stats))
        .route("/v1/accounts/{account}/monitors/{id}/history", get(history))
        .route("/v1/accounts/{account}/monitors/{id}/uptime", get(uptime))
}

/// Oldest time `from` may name: nothing older is kept anyway.
const EARLIEST_MS: i64 = 0;
/// Latest time `to` may name (year 9999), so every time prints as RFC 3339.
const LATEST_MS: i64 = 253_402_300_799_999;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    token: Option<String>,
}

/// Checks one history answer holds at most (the newest of its range).
pub const MAX_CHECKS: usize = 100_000;
const DEFAULT_CHECKS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    token: Option<String>,
}

fn store_error(e: StoreError) -> ApiError {
    HeartbeatError::Store(e).into()
}

/// A time given as RFC 3339 or as Unix milliseconds.
fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    let ms = match value.parse::<i64>() {
        Ok(ms) => Some(ms),
        Err(_) => {
            event::parse_rfc3339(value).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
    };
    ms.filter(|ms| (EARLIEST_MS..=LATEST_MS).contains(ms))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name} must be an RFC 3339 time or Unix milliseconds between 1970 and 9999, not {value:?}"
            ))
        })
}

async fn history(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RangeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_reader(&state, &headers, query.token.as_deref(), &account)?;
    let to = match &query.to {
        Some(to) => parse_time("to", to)?,
        None => uptime::now_ms(),
    };
    let from = match &query.from {
        Some(from) => parse_time("from", from)?,
        None => (to - DAY_MS).max(EARLIEST_MS),
    };
    if from > to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    let limit = match &query.limit {
        None => DEFAULT_CHECKS,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CHECKS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_CHECKS}, not {limit:?}"
                ))
            })?,
    };
    state.heartbeat.get(&account, &id).await?;
    let range = state
        .history
        .history(&account, &id, from, to, limit)
        .await
        .map_err(store_error)?;
    Ok(Json(uptime::page(&account, &id, range, from, to)).into_response())
}

async fn uptime(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_reader(&state, &headers, query.token.as_deref(), &account)?;
    state.heartbeat.get(&account, &id).await?;
    let now = uptime::now_ms();
    let range = state
        .history
        .history(&account, &id, now - 30 * DAY_MS, now, usize::MAX)
        .await
        .map_err(store_error)?;
    Ok(Json(uptime::uptime(&account, &id, &range, now)).into_response())
}

async fn stats(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = super::account(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_reader(&state, &headers, query.token.as_deref(), &account)?;
    let monitors = state.heartbeat.list(&account).await?;
    let count =
        |health: Health| monitors.iter().filter(|m| m.state.health == health).count() as u64;
    let counts = state
        .history
        .account_counts(&account, uptime::now_ms() - DAY_MS)
        .await
        .map_err(store_error)?;
    Ok(Json(MonitorStats {
        account_id: account.clone(),
        monitors: monitors.len() as u64,
        healthy: count(Health::Healthy),
        unhealthy: count(Health::Unhealthy),
        unknown: count(Health::Unknown),
        transitions_24h: counts.transitions,
        checks_24h: counts.checks,
    })
    .into_response())
}
