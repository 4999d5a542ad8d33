//! The monitor role: heartbeat monitors' settings and last check state.
//!
//! Monitors are configuration, not events: writing one never appends to the
//! event log or touches a snapshot (the heartbeat publishes an event for
//! that through the hub).

use super::StoreFuture;
use serde_json::Value;

/// A heartbeat monitor as a store keeps it. The store does not interpret
/// `spec` or `state`: their shape belongs to the heartbeat module, so the
/// store only has to keep two JSON documents per monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMonitor {
    pub account_id: String,
    pub id: String,
    /// The monitor's settings as last put.
    pub spec: Value,
    /// Its last saved check state; `None` until the first save.
    pub state: Option<Value>,
}

/// Heartbeat monitors, keyed by account and id.
///
/// Ordering: writes to one store are applied in the order they are
/// submitted, so a caller that awaits one write before starting the next
/// sees them applied in that order; a read started after a write's `Ok` sees
/// it. Durability: `Ok` from a write means it survives a crash of the
/// process, as for [`EventLog::append`](super::EventLog::append).
pub trait MonitorStore: Send + Sync + 'static {
    /// Creates the monitor or replaces its `spec`, keeping any saved state.
    /// Returns true when it was created.
    fn put_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        spec: Value,
    ) -> StoreFuture<'a, bool>;

    /// One monitor, or `None` when it does not exist.
    fn get_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMonitor>>;

    /// The monitors of one account (`Some`) or of every account (`None`, to
    /// resume checking at start), ordered by account then id.
    fn get_monitors<'a>(
        &'a self,
        account_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredMonitor>>;

    /// Replaces the monitor's saved check state. Returns false, storing
    /// nothing, when the monitor does not exist: a check that finishes after
    /// a delete cannot bring its monitor back.
    fn save_monitor_state<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        state: Value,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the monitor and its state. Returns false when it did not
    /// exist. The snapshot entry is not touched: it changes only through
    /// `append`, with an event that says so.
    fn delete_monitor<'a>(&'a self, account_id: &'a str, id: &'a str) -> StoreFuture<'a, bool>;
}
