//! The operations of monitor history, uptime and stats (`api::history`),
//! declared apart from `paths` so each feature's routes stay in one place.
#![allow(dead_code)] // utoipa reads the attributes; the functions only carry them.

use crate::{
    api::bodies::ErrorBody,
    uptime::{MonitorHistoryPage, MonitorStats, MonitorUptime},
};
use utoipa::IntoParams;

/// `{account}`.
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
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// Start (inclusive): RFC 3339 or Unix milliseconds; default `to` − 24 h.
    #[param(nullable = false, example = "2026-11-29T12:00:00Z")]
    from: Option<String>,
    /// End (inclusive): RFC 3339 or Unix milliseconds; default now.
    #[param(nullable = false, example = "1796040000000")]
    to: Option<String>,
    /// At most this many checks, the newest of the range (1 to 100000; default 10000).
    #[param(nullable = false, minimum = 1, maximum = 100000)]
    limit: Option<u32>,
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

/// `GET /v1/accounts/{account}/monitors/{id}/history`
#[utoipa::path(get, path = "/v1/accounts/{account}/monitors/{id}/history", tag = "monitors",
    summary = "A monitor's checks (one by one for 24 h, then hourly buckets) and transitions",
    params(MonitorPath, RangeQuery),
    responses(
        (status = 200, description = "The history in the range, oldest first", body = MonitorHistoryPage),
        (status = 400, description = "Bad path or query (a time that is not RFC 3339 or ms, from after to)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub(super) fn monitor_history() {}

/// `GET /v1/accounts/{account}/monitors/{id}/uptime`
#[utoipa::path(get, path = "/v1/accounts/{account}/monitors/{id}/uptime", tag = "monitors",
    summary = "Uptime over 24 h, 7 d and 30 d and latency p50/p95 over 24 h",
    params(MonitorPath, TokenQuery),
    responses(
        (status = 200, description = "The figures", body = MonitorUptime),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub(super) fn monitor_uptime() {}

/// `GET /v1/accounts/{account}/monitors/stats`
#[utoipa::path(get, path = "/v1/accounts/{account}/monitors/stats", tag = "monitors",
    summary = "The account's monitors by health, and its checks and transitions of the last 24 h",
    params(AccountPath, TokenQuery),
    responses(
        (status = 200, description = "The figures", body = MonitorStats),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub(super) fn monitor_stats() {}
