//! `/v1/accounts/{account}/syncs`: start, report on, cancel and read
//! tracked sync jobs (docs/JOBS.md).
//!
//! Like the rest of the API these handlers only parse, authorize and
//! validate; [`crate::jobs::Jobs`] owns every change and publishes it
//! through the hub, so a job's changes reach tabs by the one publish path.

use super::{
    AppState, JsonBody, bearer, idempotency, require_publisher, require_reader, require_service,
};
use crate::{
    api::ApiError,
    event,
    jobs::{self, JobError, JobView, ListQuery, ProgressReport, Refusal, StartRequest, Status},
};
use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

/// Page size of a listing unless `limit` says otherwise, and its maximum.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{account}/syncs", post(start).get(list))
        .route("/v1/accounts/{account}/syncs/stats", get(stats))
        .route("/v1/accounts/{account}/syncs/{id}", get(read))
        .route("/v1/accounts/{account}/syncs/{id}/progress", post(progress))
        .route("/v1/accounts/{account}/syncs/{id}/cancel", post(cancel))
}

/// A refused or failed request: the API's errors, or a job rule's.
pub enum Failure {
    Api(ApiError),
    Job(JobError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        Failure::Job(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let conflict = |code, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
        match self {
            Failure::Api(e) => e.into_response(),
            // The contract's error shape, plus the running job's id.
            Failure::Job(JobError::InProgress { id, kind }) => {
                let body = json!({"error": {
                    "code": "sync_in_progress",
                    "message": format!("a {kind:?} sync is already running: {id}"),
                    "syncId": id,
                }});
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            Failure::Job(JobError::Refused(Refusal::Invalid(m))) => {
                ApiError::bad_request(m).into_response()
            }
            Failure::Job(JobError::Refused(e @ Refusal::Cancelled)) => {
                conflict("sync_cancelled", e.to_string()).into_response()
            }
            Failure::Job(JobError::Refused(e @ Refusal::Finished(_))) => {
                conflict("sync_finished", e.to_string()).into_response()
            }
            Failure::Job(e @ JobError::NotFound(_)) => {
                ApiError::not_found(e.to_string()).into_response()
            }
            Failure::Job(JobError::Hub(e)) => ApiError::from(e).into_response(),
        }
    }
}

type Answer = Result<Response, Failure>;

/// `{account}` and `{id}`, validated.
fn sync_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((account, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !event::valid_account_id(&account) {
        return Err(ApiError::bad_request(format!(
            "invalid account id {account:?}"
        )));
    }
    if !jobs::valid_id(&id) {
        return Err(ApiError::bad_request(format!(
            "invalid sync id {id:?}: 1 to 64 of A-Z a-z 0-9 _ -"
        )));
    }
    Ok((account, id))
}

/// Runs a change in its own task: a client that hangs up must not cancel
/// it between the store write and its event.
async fn to_completion<T: Send + 'static>(
    change: impl Future<Output = Result<T, JobError>> + Send + 'static,
) -> Result<T, Failure> {
    Ok(tokio::spawn(change).await.map_err(ApiError::internal)??)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    token: Option<String>,
}

/// Reads need an API key or the account's token; only backends see a
/// job's checkpoint (tabs see the rest, as in `sync_progress`).
fn authorize_read(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    account: &str,
) -> Result<impl Fn(JobView) -> JobView, ApiError> {
    require_reader(state, headers, token, account)?;
    let service = bearer(headers).is_some_and(|c| state.keys.accepts(c));
    Ok(move |mut view: JobView| {
        if !service {
            view.checkpoint = None;
        }
        view
    })
}

async fn start(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<StartRequest>,
) -> Answer {
    let account = super::account(path)?;
    require_publisher(&state, &headers).await?;
    let idem = idempotency(&headers, "syncs", &body.raw)?;
    let service = state.jobs.clone();
    let (view, replayed) =
        to_completion(async move { service.start(&account, body.value, idem).await }).await?;
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn progress(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<ProgressReport>,
) -> Answer {
    let (account, id) = sync_path(path)?;
    // Not rate limited as a publish: the coalescer bounds the events.
    require_service(&state, &headers)?;
    let service = state.jobs.clone();
    let view =
        to_completion(async move { service.report(&account, &id, &body.value).await }).await?;
    Ok(Json(view).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Answer {
    let (account, id) = sync_path(path)?;
    require_publisher(&state, &headers).await?;
    let service = state.jobs.clone();
    let view = to_completion(async move { service.cancel(&account, &id).await }).await?;
    Ok(Json(view).into_response())
}

async fn read(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let (account, id) = sync_path(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shown = authorize_read(&state, &headers, query.token.as_deref(), &account)?;
    Ok(Json(shown(state.jobs.get(&account, &id).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    due: Option<String>,
    token: Option<String>,
}

impl ListParams {
    fn to_query(&self) -> Result<ListQuery, ApiError> {
        let status = self
            .status
            .as_deref()
            .map(Status::parse)
            .transpose()
            .map_err(ApiError::bad_request)?;
        if let Some(kind) = &self.kind {
            jobs::check_kind(kind).map_err(ApiError::bad_request)?;
        }
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}"))
                })?,
        };
        if let Some(before) = &self.before
            && !jobs::valid_id(before)
        {
            return Err(ApiError::bad_request(format!(
                "before {before:?} is not a sync id"
            )));
        }
        let due = match self.due.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "due must be true or false, not {other:?}"
                )));
            }
        };
        Ok(ListQuery {
            status,
            kind: self.kind.clone(),
            before: self.before.clone(),
            limit,
            due,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListParams>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let account = super::account(path)?;
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shown = authorize_read(&state, &headers, params.token.as_deref(), &account)?;
    let mut page = state.jobs.list(&account, params.to_query()?).await?;
    page.syncs = page.syncs.into_iter().map(shown).collect();
    Ok(Json(page).into_response())
}

async fn stats(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let account = super::account(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let shown = authorize_read(&state, &headers, query.token.as_deref(), &account)?;
    let mut stats = state.jobs.stats(&account).await?;
    stats.running = stats.running.into_iter().map(shown).collect();
    Ok(Json(stats).into_response())
}
