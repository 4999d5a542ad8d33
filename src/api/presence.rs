//! `GET /v1/accounts/{account}/presence`: the account's live connections on
//! every node, with the seq each is at (API key, or the account's own or an
//! admin token). The answer is [`crate::presence`]'s: this node's
//! connections as they are now, the other nodes' as they last published.

use super::{AccountRead, AppState};
use crate::{api::ApiError, hub::HubError, store::PresenceEntry};
use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/accounts/{account}/presence", get(presence))
}

/// The account's connections, by node then connection id.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceList {
    pub account_id: String,
    /// The node that answered.
    pub node: String,
    pub connections: Vec<PresenceEntry>,
}

async fn presence(
    State(state): State<AppState>,
    read: AccountRead,
) -> Result<Json<PresenceList>, ApiError> {
    let connections = state
        .presence
        .list(&read.account)
        .await
        .map_err(HubError::Store)?;
    Ok(Json(PresenceList {
        account_id: read.account,
        node: state.presence.node().to_owned(),
        connections,
    }))
}
