//! `/v1/webhooks` (endpoints of every account) and
//! `/v1/accounts/{account}/webhooks` (one account's): register, read and
//! delete endpoints, list and replay their deliveries, send a test event.
//! API key only. The handlers parse and authorize; `webhooks` does the rest.

use super::{AppState, JsonBody, require_service};
use crate::{
    api::ApiError,
    event,
    store::DeliveryStatus,
    webhooks::{EndpointSpec, WebhookError, spec},
};
use axum::{
    Json, Router,
    extract::{
        FromRequestParts, Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use std::collections::HashMap;

/// Deliveries listed unless `limit` says otherwise, and its maximum.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list))
        .route("/v1/webhooks/{id}", get(read).put(put).delete(delete))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/v1/webhooks/{id}/deliveries/{delivery}/retry", post(retry))
        .route("/v1/webhooks/{id}/test", post(test))
        .route("/v1/webhooks/{id}/rotate-secret", post(rotate))
        .route("/v1/accounts/{account}/webhooks", get(list))
        .route(
            "/v1/accounts/{account}/webhooks/{id}",
            get(read).put(put).delete(delete),
        )
        .route(
            "/v1/accounts/{account}/webhooks/{id}/deliveries",
            get(deliveries),
        )
        .route(
            "/v1/accounts/{account}/webhooks/{id}/deliveries/{delivery}/retry",
            post(retry),
        )
        .route("/v1/accounts/{account}/webhooks/{id}/test", post(test))
        .route(
            "/v1/accounts/{account}/webhooks/{id}/rotate-secret",
            post(rotate),
        )
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(message) => ApiError::bad_request(message),
            WebhookError::NotFound => ApiError::not_found("no such webhook"),
            WebhookError::NoDelivery => ApiError::not_found("no such delivery of this webhook"),
            WebhookError::Taken(_) => {
                ApiError::new(StatusCode::CONFLICT, "webhook_id_taken", e.to_string())
            }
            WebhookError::Store(e) => crate::hub::HubError::Store(e).into(),
        }
    }
}

/// The path of a webhook request, validated, with the API key checked:
/// the scope (`None` = every account), the endpoint id and the delivery id.
struct WebhookPath {
    account: Option<String>,
    id: Option<String>,
    delivery: Option<String>,
}

impl FromRequestParts<AppState> for WebhookPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = match Path::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Path(params)) => params,
            // `/v1/webhooks` itself has no parameters.
            Err(PathRejection::MissingPathParams(_)) => HashMap::new(),
            Err(e) => return Err(ApiError::bad_request(e.body_text())),
        };
        let account = params.get("account").cloned();
        if let Some(account) = &account
            && !event::valid_account_id(account)
        {
            return Err(ApiError::bad_request(format!(
                "invalid account id {account:?}"
            )));
        }
        let id = params.get("id").cloned();
        if let Some(id) = &id
            && !spec::valid_id(id)
        {
            return Err(ApiError::bad_request(format!(
                "invalid webhook id {id:?}: use letters, digits, '_', '-', '.' (1 to 64), not only dots"
            )));
        }
        let delivery = params.get("delivery").cloned();
        if let Some(d) = &delivery
            && !spec::valid_id(d)
        {
            return Err(ApiError::bad_request(format!("invalid delivery id {d:?}")));
        }
        require_service(state, &parts.headers)?;
        Ok(WebhookPath {
            account,
            id,
            delivery,
        })
    }
}

impl WebhookPath {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

async fn list(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    let scope = path.account.as_deref().map(Some);
    Ok(Json(state.webhooks.list(scope).await?).into_response())
}

async fn read(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    let view = state
        .webhooks
        .get(path.account.as_deref(), path.id())
        .await?;
    Ok(Json(view).into_response())
}

/// 201 with the secret when created; 200 without it when updated.
async fn put(
    State(state): State<AppState>,
    path: WebhookPath,
    body: JsonBody<EndpointSpec>,
) -> Result<Response, ApiError> {
    let (view, created) = state
        .webhooks
        .put(path.account.as_deref(), path.id(), body.value)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn delete(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    state
        .webhooks
        .delete(path.account.as_deref(), path.id())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn deliveries(
    State(state): State<AppState>,
    path: WebhookPath,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request("status must be one of pending, delivered, failed")
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let list = state
        .webhooks
        .deliveries(path.account.as_deref(), path.id(), status, limit)
        .await?;
    Ok(Json(list).into_response())
}

/// 202 with the delivery, pending and due now.
async fn retry(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    let delivery = path.delivery.as_deref().unwrap_or_default();
    let view = state
        .webhooks
        .retry(path.account.as_deref(), path.id(), delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// 200 with the endpoint and its new secret (shown this once).
async fn rotate(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    let view = state
        .webhooks
        .rotate(path.account.as_deref(), path.id())
        .await?;
    Ok(Json(view).into_response())
}

/// 202 with the queued `webhook.test` delivery.
async fn test(State(state): State<AppState>, path: WebhookPath) -> Result<Response, ApiError> {
    let view = state
        .webhooks
        .send_test(path.account.as_deref(), path.id())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The `credential-tests` answer: the receipt plus the ids of the webhook
/// endpoints the `status_sync` is queued for (the event's own
/// `servicesNotified`, read back so a replay answers the same).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedReceipt {
    #[serde(flatten)]
    pub receipt: crate::store::Receipt,
    pub services_notified: Vec<String>,
}

pub(super) async fn created_with_services(
    state: &AppState,
    appended: crate::store::Appended,
) -> Result<Response, ApiError> {
    let receipt = appended.receipt().clone();
    let history = state
        .hub
        .history(&receipt.account_id, receipt.seq.saturating_sub(1), 1)
        .await?;
    let services_notified = history
        .events
        .first()
        .filter(|e| e.seq == receipt.seq)
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e.data.get()).ok())
        .and_then(|mut data| serde_json::from_value(data["servicesNotified"].take()).ok())
        .unwrap_or_default();
    let mut response = super::created(appended);
    *response.body_mut() = axum::body::Body::from(
        serde_json::to_vec(&NotifiedReceipt {
            receipt,
            services_notified,
        })
        .map_err(ApiError::internal)?,
    );
    Ok(response)
}
