//! The two events the heartbeat publishes, as store bodies: what each
//! carries and what it leaves in the snapshot's `monitors` section.
//!
//! Both derive from the monitor's snapshot entry inside the store's append,
//! so `previous` is exactly what tabs were last told, even across restarts.

use super::machine::{Current, Kind, Source};
use crate::{
    event,
    store::{Body, EntryChange, Section},
};
use serde_json::{Value, json};
use std::sync::Arc;

/// `health_changed`; the entry becomes `current`.
pub fn health_changed(monitor_id: &str, kind: Kind, source: Source, current: &Current) -> Body {
    let id = monitor_id.to_owned();
    let current = serde_json::to_value(current).unwrap_or(Value::Null);
    let timestamp = event::rfc3339(event::now());
    Body::Entry {
        section: Section::Monitors,
        key: monitor_id.to_owned(),
        derive: Arc::new(move |previous| EntryChange {
            data: json!({
                "monitorId": id,
                "kind": kind,
                "source": source,
                "previous": previous.cloned().unwrap_or_else(|| json!({ "health": "unknown" })),
                "current": current,
                "timestamp": timestamp,
            }),
            entry: Some(current.clone()),
        }),
    }
}

/// `monitor_removed`; the entry goes, so a new tab no longer sees the monitor
/// and a connected one learns to drop it.
pub fn monitor_removed(monitor_id: &str) -> Body {
    let id = monitor_id.to_owned();
    let timestamp = event::rfc3339(event::now());
    Body::Entry {
        section: Section::Monitors,
        key: monitor_id.to_owned(),
        derive: Arc::new(move |_| EntryChange {
            data: json!({ "monitorId": id, "timestamp": timestamp }),
            entry: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::machine::Health;

    fn derive(body: &Body, previous: Option<&Value>) -> EntryChange {
        match body {
            Body::Entry { derive, .. } => derive(previous),
            _ => panic!("monitor events derive from their entry"),
        }
    }

    #[test]
    fn health_changed_carries_previous_and_leaves_current() {
        let current = Current {
            health: Health::Healthy,
            latency_ms: Some(7),
            http_status: Some(200),
            last_error: None,
            last_checked: Some("T".into()),
        };
        let body = health_changed("m1", Kind::StatusChange, Source::Heartbeat, &current);
        let first = derive(&body, None);
        assert_eq!(first.data["previous"], json!({ "health": "unknown" }));
        assert_eq!(first.data["kind"], "status_change");
        assert_eq!(first.data["source"], "heartbeat");
        assert_eq!(first.data["monitorId"], "m1");
        assert_eq!(first.entry, Some(first.data["current"].clone()));
        let before = json!({ "health": "unhealthy", "latencyMs": 3, "lastChecked": "S" });
        assert_eq!(derive(&body, Some(&before)).data["previous"], before);
        assert_eq!(derive(&monitor_removed("m1"), Some(&before)).entry, None);
    }
}
