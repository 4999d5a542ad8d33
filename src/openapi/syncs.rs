//! The operations of `/v1/accounts/{account}/syncs` (sync jobs,
//! docs/JOBS.md), declared like those in `paths`.
#![allow(dead_code)] // utoipa reads the attributes; the functions only carry them.

use crate::{
    api::bodies::ErrorBody,
    jobs::{JobPage, JobStats, JobView, ProgressReport, StartRequest},
};
use utoipa::IntoParams;

/// `{account}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct SyncsPath {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
}

/// `{account}` and a sync's `{id}` (as the start answered it).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct SyncPath {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
    #[param(
        pattern = "^[A-Za-z0-9_-]{1,64}$",
        example = "sync_019a3c5e7f00a1b2c3d4e5f6"
    )]
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct StartHeaders {
    /// A retry with the same key and body answers the job the first start
    /// created (with `Idempotent-Replayed: true`) and starts nothing; the
    /// same key with another body is `409 idempotency_conflict`.
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
struct TokenQuery {
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// A status word or alias (`running`, `in_progress`, `failed`, `error`, …).
    #[param(nullable = false)]
    status: Option<String>,
    #[param(nullable = false, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    kind: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// The previous page's `nextBefore`.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    before: Option<String>,
    /// Only jobs a worker should start now: a re-run attempt no worker has
    /// reported on yet, or a failed job whose `nextRetryAt` has come.
    #[param(nullable = false)]
    due: Option<bool>,
    /// A client token, when it cannot go in `Authorization`.
    #[param(nullable = false)]
    token: Option<String>,
}

/// `POST /v1/accounts/{account}/syncs`
#[utoipa::path(post, path = "/v1/accounts/{account}/syncs", tag = "syncs",
    summary = "Start a sync job; emits sync_progress",
    params(SyncsPath, StartHeaders),
    request_body(content = StartRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Started (or the replayed start)", body = JobView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 409, description = "`sync_in_progress` (a job of this kind is running; \
`error.syncId` names it) or `idempotency_conflict`", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "Store unavailable; nothing started", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub fn sync_start() {}

/// `GET /v1/accounts/{account}/syncs`
#[utoipa::path(get, path = "/v1/accounts/{account}/syncs", tag = "syncs",
    summary = "The account's sync jobs, newest first, paged",
    params(SyncsPath, ListParams),
    responses(
        (status = 200, description = "One page", body = JobPage),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub fn sync_list() {}

/// `GET /v1/accounts/{account}/syncs/stats`
#[utoipa::path(get, path = "/v1/accounts/{account}/syncs/stats", tag = "syncs",
    summary = "Statistics computed from the account's stored sync jobs",
    params(SyncsPath, TokenQuery),
    responses(
        (status = 200, description = "The statistics", body = JobStats),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub fn sync_stats() {}

/// `GET /v1/accounts/{account}/syncs/{id}`
#[utoipa::path(get, path = "/v1/accounts/{account}/syncs/{id}", tag = "syncs",
    summary = "One sync job (its checkpoint only for API keys)",
    params(SyncPath, TokenQuery),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Bad path or query", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The token is for another account", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = []), ("clientToken" = []), ("queryToken" = [])))]
pub fn sync_get() {}

/// `POST /v1/accounts/{account}/syncs/{id}/progress`
#[utoipa::path(post, path = "/v1/accounts/{account}/syncs/{id}/progress", tag = "syncs",
    summary = "A worker's report: progress, results, checkpoint, or an end; emits sync_progress \
(progress at most every 250 ms per job, status changes at once)",
    params(SyncPath),
    request_body(content = ProgressReport, content_type = "application/json"),
    responses(
        (status = 200, description = "The job after the report", body = JobView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "`sync_cancelled` (stop working on it) or `sync_finished` \
(a report cannot reopen a finished job)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub fn sync_progress() {}

/// `POST /v1/accounts/{account}/syncs/{id}/cancel`
#[utoipa::path(post, path = "/v1/accounts/{account}/syncs/{id}/cancel", tag = "syncs",
    summary = "Cancel a running job or a waiting retry; emits sync_progress",
    params(SyncPath),
    responses(
        (status = 200, description = "The cancelled job (cancelling twice changes nothing)", body = JobView),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "`sync_finished`: it completed or failed for good", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub fn sync_cancel() {}
