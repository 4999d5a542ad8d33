//! The operator's figures: `/metrics` (Prometheus text) and `/v1/stats`
//! (JSON), both rendered from one [`Report`](crate::metrics::Report) so they
//! always agree. Like `/healthz`, they carry no account data and need no
//! credentials; expose them only where operators can reach them.

use super::AppState;
use crate::{
    cluster::NodeReport,
    heartbeat::HeartbeatStats,
    metrics::{Families, Report},
    store::FanoutReport,
};
use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

/// The hub's figures plus the heartbeat's, read now; `/v1/stats` is this as JSON.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Stats {
    #[serde(flatten)]
    hub: Report,
    /// Heartbeat monitors and their checks.
    monitors: HeartbeatStats,
    /// Cross-node fan-out (Redis mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    fanout: Option<FanoutReport>,
    /// This node: id, store kind, Redis round trip, monitor leases.
    node: NodeReport,
}

fn report(state: &AppState) -> Stats {
    Stats {
        hub: state.hub.metrics.report(state.hub.subscription_count()),
        monitors: state.heartbeat.stats(),
        fanout: state.fanout.as_ref().map(|f| f.report()),
        node: state.node.report(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let Stats {
        hub,
        monitors,
        fanout,
        node,
    } = report(&state);
    let webhooks = state.webhooks.report().await;
    let mut others: Vec<&dyn Families> = vec![&monitors, &node, &webhooks];
    if let Some(fanout) = &fanout {
        others.push(fanout);
    }
    let mut response = hub.prometheus(&others).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn stats(State(state): State<AppState>) -> Response {
    Json(report(&state)).into_response()
}
