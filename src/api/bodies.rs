//! The API's JSON bodies that are not domain types (those live with their
//! owners: [`crate::event`], [`crate::store`], [`crate::heartbeat`]). The
//! handlers answer with these very types and the OpenAPI document
//! ([`crate::openapi`]) describes them, so the two cannot disagree.

use crate::{event::Event, heartbeat::MonitorView};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable word: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `too_large`, `rate_limited`, `store_unavailable`, …
    #[schema(pattern = "^[a-z_]+$")]
    pub code: &'a str,
    /// For people; its wording may change.
    pub message: &'a str,
}

/// `GET /v1/accounts/{account}/events`: one page of retained events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    pub account_id: String,
    /// The account's latest seq when read.
    pub seq: u64,
    /// The account's epoch (see the snapshot's `epoch`).
    pub epoch: String,
    /// True when events after `since` are no longer retained (or `since` is
    /// ahead of the account, or `epoch` was given and differs): start over
    /// from the snapshot.
    pub reset: bool,
    /// True when this page is full and more events follow its last one.
    pub has_more: bool,
    pub events: Vec<Event>,
}

/// `GET /v1/accounts/{account}/monitors`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorList {
    pub account_id: String,
    pub monitors: Vec<MonitorView>,
}

/// `GET /healthz` (`ok`) and `GET /readyz` (`ready`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceStatus {
    #[schema(pattern = "^(ok|ready)$")]
    pub status: &'static str,
}

/// `POST …/monitors/{id}/status` when the monitor already had that health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unchanged {
    /// Always `false`.
    pub changed: bool,
}
