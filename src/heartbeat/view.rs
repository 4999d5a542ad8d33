//! What the API shows and accepts for a monitor: [`MonitorView`] (settings,
//! latest state, failure count) and [`StatusOverride`] (a manual health).
//!
//! Kept apart from the running monitors so the wire shapes can be read (and
//! changed) without the locking and scheduling around them.

use super::{Current, Health, MonitorSpec, MonitorState, Source};
use crate::store::StoredMonitor;
use serde::{Deserialize, Serialize};

/// A monitor as the API shows it: its settings, its latest state and its
/// count of consecutive failed checks.
/// (Its OpenAPI schema is in `openapi::schemas`: the flattened settings.)
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorView {
    pub id: String,
    pub account_id: String,
    #[serde(flatten)]
    pub spec: MonitorSpec,
    pub state: Current,
    pub consecutive_failures: u32,
}

impl MonitorView {
    pub(super) fn from_stored(stored: StoredMonitor) -> Option<MonitorView> {
        let spec = serde_json::from_value(stored.spec)
            .inspect_err(|error| {
                tracing::error!(account = %stored.account_id, monitor = %stored.id, %error, "left out a stored monitor whose settings cannot be read");
            })
            .ok()?;
        let state: MonitorState = stored
            .state
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        Some(MonitorView {
            id: stored.id,
            account_id: stored.account_id,
            spec,
            state: state.current,
            consecutive_failures: state.consecutive_failures,
        })
    }

    /// Header values may be credentials for the checked endpoint: readers
    /// other than backends see only their names.
    pub fn redacted(mut self) -> MonitorView {
        for value in self.spec.headers.values_mut() {
            *value = "<redacted>".into();
        }
        self
    }
}

/// `POST .../monitors/{id}/status`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"health": "unhealthy", "source": "manual", "lastError": "maintenance"}))]
pub struct StatusOverride {
    pub health: Health,
    /// `manual` (default) or `system`; `heartbeat` is the checker's own.
    pub source: Option<Source>,
    /// Shown as `current.lastError`; none clears it.
    pub last_error: Option<String>,
}
