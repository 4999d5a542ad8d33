//! The operator's figures: `/metrics` (Prometheus text) and `/v1/stats`
//! (JSON), both rendered from one [`Report`](crate::metrics::Report) so they
//! always agree. Like `/healthz`, they carry no account data and need no
//! credentials; expose them only where operators can reach them.

use super::AppState;
use crate::metrics::Report;
use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

/// The hub's figures plus the heartbeat's, read now.
fn report(state: &AppState) -> Report {
    let mut report = state.hub.metrics.report(state.hub.subscription_count());
    report.monitors = state.heartbeat.stats();
    report
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = report(&state).prometheus().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn stats(State(state): State<AppState>) -> Response {
    Json(report(&state)).into_response()
}
