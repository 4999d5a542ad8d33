//! `/v1/accounts/{account}/monitors`: register, read, override and delete
//! heartbeat monitors.
//!
//! Like the rest of the API these handlers only parse, authorize and
//! validate paths; the heartbeat owns the monitors and publishes through the
//! hub, so a monitor's changes reach tabs by the same path as any event.

use super::{
    AppState, JsonBody, bearer,
    bodies::{MonitorList, Unchanged},
    require_reader, require_service,
};
use crate::{
    api::ApiError,
    event,
    heartbeat::{self, MonitorSpec, MonitorView, StatusOverride},
};
use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/{account}/monitors", get(list))
        .route(
            "/v1/accounts/{account}/monitors/{id}",
            get(read).put(put).delete(delete),
        )
        .route(
            "/v1/accounts/{account}/monitors/{id}/status",
            post(set_status),
        )
}

/// Runs a monitor change in its own task: a client that hangs up must not
/// cancel it half-way (say, after the event is published but before the
/// monitor stops being checked).
async fn to_completion<T: Send + 'static>(
    change: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(change).await.map_err(ApiError::internal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    token: Option<String>,
}

/// `{account}` and `{id}`, validated.
pub(super) fn monitor_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((account, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !event::valid_account_id(&account) {
        return Err(ApiError::bad_request(format!(
            "invalid account id {account:?}"
        )));
    }
    if !heartbeat::valid_monitor_id(&id) {
        return Err(ApiError::bad_request(format!(
            "invalid monitor id {id:?}: use letters, digits, '_', '-', '.', '@' (1 to 128), not only dots"
        )));
    }
    Ok((account, id))
}

/// Reads need an API key or the account's token; only backends see header values.
fn authorize_read(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
    account: &str,
) -> Result<impl Fn(MonitorView) -> MonitorView, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_reader(state, headers, query.token.as_deref(), account)?;
    let service = bearer(headers).is_some_and(|c| state.keys.accepts(c));
    Ok(move |view: MonitorView| if service { view } else { view.redacted() })
}

async fn put(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<MonitorSpec>,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    require_service(&state, &headers)?;
    let heartbeat = state.heartbeat.clone();
    let (view, created) =
        to_completion(async move { heartbeat.put(&account, &id, body.value).await }).await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn read(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    let shown = authorize_read(&state, &headers, query, &account)?;
    let view = state.heartbeat.get(&account, &id).await?;
    Ok(Json(shown(view)).into_response())
}

async fn list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = super::account(path)?;
    let shown = authorize_read(&state, &headers, query, &account)?;
    let monitors: Vec<MonitorView> = state
        .heartbeat
        .list(&account)
        .await?
        .into_iter()
        .map(shown)
        .collect();
    Ok(Json(MonitorList {
        account_id: account,
        monitors,
    })
    .into_response())
}

async fn delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    require_service(&state, &headers)?;
    let heartbeat = state.heartbeat.clone();
    to_completion(async move { heartbeat.delete(&account, &id).await }).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 201 with the event's receipt when the health changed; 200 with
/// `changed: false` when the monitor already had that health.
async fn set_status(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: JsonBody<StatusOverride>,
) -> Result<Response, ApiError> {
    let (account, id) = monitor_path(path)?;
    require_service(&state, &headers)?;
    let heartbeat = state.heartbeat.clone();
    let changed =
        to_completion(async move { heartbeat.set_status(&account, &id, body.value).await })
            .await??;
    match changed {
        Some(appended) => Ok(super::created(appended)),
        None => Ok(Json(Unchanged { changed: false }).into_response()),
    }
}
