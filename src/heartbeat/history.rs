//! What the heartbeat keeps of every check: one [`CheckRecord`] per applied
//! check in the [`MonitorHistory`] store, for uptime bars and figures.
//!
//! Recording is best effort, like saving the state: a failed write is
//! logged and the check still counts for the monitor's health. A heartbeat
//! started without a history store records nothing.

use super::{Health, Kind, MonitorKey, machine::Check};
use crate::store::{CheckRecord, HistoryPolicy, MonitorHistory};
use std::sync::Arc;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

#[derive(Clone, Default)]
pub(super) struct Recorder {
    store: Option<(Arc<dyn MonitorHistory>, HistoryPolicy)>,
}

impl Recorder {
    pub(super) fn new(store: Arc<dyn MonitorHistory>, policy: HistoryPolicy) -> Self {
        Recorder {
            store: Some((store, policy)),
        }
    }

    /// Keeps one check's result.
    pub(super) async fn keep(&self, key: &MonitorKey, record: CheckRecord) {
        let Some((store, policy)) = &self.store else {
            return;
        };
        if let Err(e) = store
            .record(&key.account_id, &key.id, record, *policy)
            .await
        {
            tracing::warn!(account = %key.account_id, monitor = %key.id, error = %e, "could not keep a check in the monitor's history");
        }
    }

    /// Drops a deleted monitor's history.
    pub(super) async fn forget(&self, key: &MonitorKey) {
        let Some((store, _)) = &self.store else {
            return;
        };
        if let Err(e) = store.forget(&key.account_id, &key.id).await {
            tracing::warn!(account = %key.account_id, monitor = %key.id, error = %e, "could not drop a deleted monitor's history");
        }
    }
}

/// The record of a check that left the monitor at `health`, changing it by `change`.
pub(super) fn record_of(check: &Check, health: Health, change: Option<Kind>) -> CheckRecord {
    let at = OffsetDateTime::parse(&check.checked_at, &Rfc3339)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    CheckRecord {
        at_ms: (at.unix_timestamp_nanos() / 1_000_000) as i64,
        ok: check.passed(),
        health: health.as_str().to_owned(),
        latency_ms: check.latency_ms,
        http_status: check.http_status,
        error: check
            .error
            .as_ref()
            .map(|(kind, detail)| format!("{}: {detail}", kind.as_str())),
        transition: change.and_then(|kind| {
            serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::machine::ErrorKind;

    #[test]
    fn a_record_carries_the_check_and_its_change() {
        let check = Check {
            latency_ms: 42,
            http_status: Some(503),
            error: Some((ErrorKind::UnexpectedStatus, "503".into())),
            checked_at: "2026-11-30T12:00:00.250Z".into(),
        };
        let record = record_of(&check, Health::Unhealthy, Some(Kind::ErrorState));
        assert_eq!(record.at_ms, 1_796_040_000_250);
        assert!(!record.ok);
        assert_eq!(record.health, "unhealthy");
        assert_eq!(record.error.as_deref(), Some("unexpected_status: 503"));
        assert_eq!(record.transition.as_deref(), Some("error_state"));
        let passed = Check {
            error: None,
            http_status: Some(200),
            ..check
        };
        let record = record_of(&passed, Health::Healthy, None);
        assert!(record.ok && record.error.is_none() && record.transition.is_none());
    }
}
