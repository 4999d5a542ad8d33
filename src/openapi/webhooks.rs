//! The webhook operations of the OpenAPI document (`api::webhooks`), one
//! declaration per route and method, for the all-accounts scope
//! (`/v1/webhooks/…`) and the one-account scope
//! (`/v1/accounts/{account}/webhooks/…`). Never called; `tests/openapi.rs`
//! checks them against the router.
#![allow(dead_code)] // utoipa reads the attributes; the functions only carry them.

use crate::{
    api::bodies::ErrorBody,
    webhooks::{DeliveryList, DeliveryView, EndpointList, EndpointSpec, EndpointView},
};
use utoipa::IntoParams;

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

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct GlobalHook {
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "orders"
    )]
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct AccountHook {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "orders"
    )]
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct GlobalDelivery {
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "orders"
    )]
    id: String,
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "dlv_0a1b2c3d4e5f60718293a4b5"
    )]
    delivery: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct AccountDelivery {
    #[param(
        pattern = r"^[A-Za-z0-9_.@-]*[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$",
        min_length = 1,
        max_length = 128,
        example = "acme"
    )]
    account: String,
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "orders"
    )]
    id: String,
    #[param(
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        min_length = 1,
        max_length = 64,
        example = "dlv_0a1b2c3d4e5f60718293a4b5"
    )]
    delivery: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Only deliveries in this state.
    #[param(pattern = "^(pending|delivered|failed)$")]
    status: Option<String>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /v1/webhooks`
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    summary = "The webhook endpoints of every scope (never the secrets)",

    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_list() {}

/// `GET /v1/webhooks/{id}`
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    summary = "One webhook endpoint (every account); never its secret",
    params(GlobalHook),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_get() {}

/// `PUT /v1/webhooks/{id}`
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks",
    summary = "Create or update a webhook endpoint receiving events of every account",
    params(GlobalHook),
    request_body(content = EndpointSpec, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated (the secret is kept and not shown)", body = EndpointView),
        (status = 201, description = "Created: the answer holds the signing secret `whsec_…`, shown once", body = EndpointView),
        (status = 409, description = "The id belongs to an endpoint of the other scope (`webhook_id_taken`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_put() {}

/// `DELETE /v1/webhooks/{id}`
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    summary = "Delete a webhook endpoint and its pending deliveries",
    params(GlobalHook),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_delete() {}

/// `GET /v1/webhooks/{id}/deliveries`
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    summary = "The endpoint's deliveries, newest first",
    params(GlobalHook, DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_deliveries() {}

/// `POST /v1/webhooks/{id}/deliveries/{delivery}/retry`
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    summary = "Send a delivery again now (pending, due at once)",
    params(GlobalDelivery),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such webhook or delivery", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_retry() {}

/// `POST /v1/webhooks/{id}/test`
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    summary = "Queue a `webhook.test` event to the endpoint",
    params(GlobalHook),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_test() {}

/// `GET /v1/accounts/{account}/webhooks`
#[utoipa::path(get, path = "/v1/accounts/{account}/webhooks", tag = "webhooks",
    summary = "The webhook endpoints of one account (never the secrets)",
    params(AccountPath),
    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_list() {}

/// `GET /v1/accounts/{account}/webhooks/{id}`
#[utoipa::path(get, path = "/v1/accounts/{account}/webhooks/{id}", tag = "webhooks",
    summary = "One webhook endpoint (one account); never its secret",
    params(AccountHook),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_get() {}

/// `PUT /v1/accounts/{account}/webhooks/{id}`
#[utoipa::path(put, path = "/v1/accounts/{account}/webhooks/{id}", tag = "webhooks",
    summary = "Create or update a webhook endpoint receiving events of one account",
    params(AccountHook),
    request_body(content = EndpointSpec, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated (the secret is kept and not shown)", body = EndpointView),
        (status = 201, description = "Created: the answer holds the signing secret `whsec_…`, shown once", body = EndpointView),
        (status = 409, description = "The id belongs to an endpoint of the other scope (`webhook_id_taken`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not `application/json`", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_put() {}

/// `DELETE /v1/accounts/{account}/webhooks/{id}`
#[utoipa::path(delete, path = "/v1/accounts/{account}/webhooks/{id}", tag = "webhooks",
    summary = "Delete a webhook endpoint and its pending deliveries",
    params(AccountHook),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_delete() {}

/// `GET /v1/accounts/{account}/webhooks/{id}/deliveries`
#[utoipa::path(get, path = "/v1/accounts/{account}/webhooks/{id}/deliveries", tag = "webhooks",
    summary = "The endpoint's deliveries, newest first",
    params(AccountHook, DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_deliveries() {}

/// `POST /v1/accounts/{account}/webhooks/{id}/deliveries/{delivery}/retry`
#[utoipa::path(post, path = "/v1/accounts/{account}/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    summary = "Send a delivery again now (pending, due at once)",
    params(AccountDelivery),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such webhook or delivery", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_retry() {}

/// `POST /v1/accounts/{account}/webhooks/{id}/test`
#[utoipa::path(post, path = "/v1/accounts/{account}/webhooks/{id}/test", tag = "webhooks",
    summary = "Queue a `webhook.test` event to the endpoint",
    params(AccountHook),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_test() {}

/// `POST /v1/webhooks/{id}/rotate-secret`
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    summary = "Give the endpoint a new signing secret; the old one signs beside it for 24 h",
    params(GlobalHook),
    responses(
        (status = 200, description = "The endpoint with its new secret `whsec_…`, shown once", body = EndpointView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn webhook_rotate() {}

/// `POST /v1/accounts/{account}/webhooks/{id}/rotate-secret`
#[utoipa::path(post, path = "/v1/accounts/{account}/webhooks/{id}/rotate-secret", tag = "webhooks",
    summary = "Give the endpoint a new signing secret; the old one signs beside it for 24 h",
    params(AccountHook),
    responses(
        (status = 200, description = "The endpoint with its new secret `whsec_…`, shown once", body = EndpointView),
        (status = 404, description = "No such webhook in this scope", body = ErrorBody),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No or bad API key", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
fn account_webhook_rotate() {}
