//! Which node checks a monitor: the holder of its lease (`cluster::Leases`).
//!
//! Before each due check the scheduler asks [`Checker::take_turn`]. The
//! holder renews its lease for the check (the monitor's timeout plus a
//! margin) and, once the result is applied, for the wait until its next
//! check ([`Checker::keep_turn`]); any other node skips and asks again
//! after half an interval. A node that dies stops renewing, so its lease
//! runs out at most one wait plus the margin after its last check and the
//! next node to ask takes over: within two intervals of that check.
//!
//! In cluster mode the holder first reloads the monitor from the store, so
//! a takeover continues from the last saved state (failure count included)
//! and a change made through another node (new settings, an override, a
//! delete) is seen. Monitors registered through other nodes are adopted by
//! [`adopt`] every [`ADOPT_EVERY`], so every node can take any of them over.
//! A single node holds every lease and reloads nothing: it behaves as if
//! there were no leases.

use super::{
    MonitorKey, MonitorSpec, MonitorState,
    checker::{Checker, Monitor, health_code},
    scheduler::{Scheduler, Turn},
};
use crate::cluster::Claim;
use std::{
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// How often a node looks in the store for monitors registered elsewhere.
pub const ADOPT_EVERY: Duration = Duration::from_secs(5);
/// The lease margin is a quarter interval, at most this.
const MAX_MARGIN: Duration = Duration::from_secs(5);

/// The lease of one monitor.
pub fn lease_name(key: &MonitorKey) -> String {
    format!("monitor:{}/{}", key.account_id, key.id)
}

/// Slack on every lease TTL for scheduling and round trips.
fn margin(interval: Duration) -> Duration {
    (interval / 4).min(MAX_MARGIN)
}

impl Checker {
    /// True when this node checks the monitor (so its live state is current).
    pub(super) fn checks(&self, key: &MonitorKey) -> bool {
        !self.leases.shared() || self.leases.holds(&lease_name(key))
    }

    pub(super) async fn take_turn(&self, key: &MonitorKey) -> Turn {
        let Some(monitor) = self.monitors.get(key).map(|m| m.clone()) else {
            return Turn::Stop;
        };
        let (interval, timeout) = {
            let inner = monitor.inner.lock().await;
            if inner.removed {
                return Turn::Stop;
            }
            (
                inner.spec.policy().interval,
                Duration::from_millis(inner.spec.timeout_ms),
            )
        };
        let name = lease_name(key);
        let node = self.leases.node();
        match self.leases.claim(&name, timeout + margin(interval)).await {
            Claim::Acquired { previous } if self.leases.shared() => tracing::info!(
                account = %key.account_id, monitor = %key.id, node,
                previous_owner = previous.as_deref().unwrap_or("unknown"),
                "monitor lease acquired"
            ),
            Claim::Acquired { .. } | Claim::Renewed => {}
            Claim::Elsewhere { holder, lost } => {
                if lost {
                    tracing::info!(account = %key.account_id, monitor = %key.id, node, owner = %holder, "monitor lease lost");
                }
                return Turn::Skip(interval / 2);
            }
            Claim::Unknown(e) => {
                tracing::debug!(account = %key.account_id, monitor = %key.id, error = %e, "monitor lease unknown; not checking");
                return Turn::Skip(interval / 2);
            }
        }
        if self.leases.shared() && !self.reload(key, &monitor).await {
            return Turn::Stop;
        }
        Turn::Check
    }

    pub(super) async fn keep_turn(&self, key: &MonitorKey, until: Duration) {
        // The map's guard is let go before waiting on the monitor's lock: a
        // delete holds that lock while it removes the entry from the map.
        let Some(monitor) = self.monitors.get(key).map(|m| m.clone()) else {
            return;
        };
        let interval = monitor.inner.lock().await.spec.policy().interval;
        let name = lease_name(key);
        if !self.leases.extend(&name, until + margin(interval)).await {
            tracing::info!(account = %key.account_id, monitor = %key.id, node = self.leases.node(), "monitor lease lost");
        }
    }

    /// Adopts the stored settings and state; false (the monitor is dropped
    /// here) when it was deleted through another node.
    async fn reload(&self, key: &MonitorKey, monitor: &Arc<Monitor>) -> bool {
        let stored = match self.store.get_monitor(&key.account_id, &key.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                self.drop_deleted(key, monitor).await;
                return false;
            }
            Err(e) => {
                tracing::warn!(account = %key.account_id, monitor = %key.id, error = %e, "could not reload a monitor; checking with the state held here");
                return true;
            }
        };
        let mut inner = monitor.inner.lock().await;
        if inner.removed {
            return false;
        }
        if let Ok(spec) = serde_json::from_value::<MonitorSpec>(stored.spec)
            && *inner.spec != spec
        {
            inner.spec = Arc::new(spec);
            inner.version += 1;
        }
        if let Some(state) = stored
            .state
            .and_then(|s| serde_json::from_value::<MonitorState>(s).ok())
        {
            monitor
                .health
                .store(health_code(state.health()), Ordering::Relaxed);
            inner.state = state;
        }
        true
    }

    async fn drop_deleted(&self, key: &MonitorKey, monitor: &Arc<Monitor>) {
        let mut inner = monitor.inner.lock().await;
        inner.removed = true;
        monitor.deleted.cancel();
        self.monitors.remove_if(key, |_, m| Arc::ptr_eq(m, monitor));
        drop(inner);
        self.leases.release(&lease_name(key)).await;
        tracing::info!(account = %key.account_id, monitor = %key.id, "monitor deleted through another node; no longer checked");
    }
}

/// Every [`ADOPT_EVERY`] until `stop`: monitors in the store this node does
/// not know yet (registered through another node) are added and scheduled,
/// with their saved state.
pub(super) async fn adopt(
    checker: Arc<Checker>,
    scheduler: Weak<Scheduler<MonitorKey>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ADOPT_EVERY) => {}
        }
        let Ok(stored) = checker.store.get_monitors(None).await else {
            continue;
        };
        let Some(scheduler) = scheduler.upgrade() else {
            return;
        };
        for monitor in stored {
            let key = MonitorKey::new(&monitor.account_id, &monitor.id);
            if checker.monitors.contains_key(&key) {
                continue;
            }
            let Ok(spec) = serde_json::from_value::<MonitorSpec>(monitor.spec) else {
                continue;
            };
            let state = monitor
                .state
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let interval = spec.policy().interval;
            // A put on this node may have registered it meanwhile: keep that one.
            if let dashmap::Entry::Vacant(e) = checker.monitors.entry(key.clone()) {
                e.insert(Arc::new(Monitor::new(spec, state)));
                scheduler.schedule(key, interval);
            }
        }
    }
}
