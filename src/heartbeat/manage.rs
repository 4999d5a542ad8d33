//! The API-facing operations on monitors: create or change (`put`), read
//! (`get`, `list`), `delete` and manual overrides (`set_status`).
//!
//! Each one takes the monitor's lock (see `checker`) before touching its
//! state, store row or events, so it is ordered with the monitor's checks;
//! the store is the source of truth for reads, overlaid with the live state
//! this node holds.

use super::{
    FIRST_CHECK_WITHIN, Heartbeat, HeartbeatError, MAX_MONITORS_PER_ACCOUNT, MonitorKey,
    MonitorSpec, MonitorState, MonitorView, Source, StatusOverride, checker::Monitor, events,
    turns,
};
use crate::{
    event,
    store::{Appended, StoredMonitor},
};
use dashmap::mapref::entry::Entry;
use std::sync::Arc;

const MAX_OVERRIDE_ERROR_BYTES: usize = 1024;

impl Heartbeat {
    /// Creates or replaces a monitor's settings (validated here). Its state
    /// is kept; it is checked again within [`FIRST_CHECK_WITHIN`]. Returns
    /// the monitor and whether it was created.
    pub async fn put(
        &self,
        account_id: &str,
        id: &str,
        spec: MonitorSpec,
    ) -> Result<(MonitorView, bool), HeartbeatError> {
        let spec = spec
            .validated(&self.limits)
            .map_err(HeartbeatError::Invalid)?;
        let stored =
            serde_json::to_value(&spec).map_err(|e| HeartbeatError::Invalid(e.to_string()))?;
        let key = MonitorKey::new(account_id, id);
        let (monitor, fresh) = self.claim(&key, &spec)?;
        let mut inner = monitor.inner.lock().await;
        if inner.removed {
            return Err(HeartbeatError::Conflict(id.to_owned()));
        }
        let created = match self.checker.store.put_monitor(account_id, id, stored).await {
            Ok(created) => created,
            Err(e) => {
                if fresh {
                    inner.removed = true;
                    self.checker
                        .monitors
                        .remove_if(&key, |_, m| Arc::ptr_eq(m, &monitor));
                }
                return Err(e.into());
            }
        };
        let interval = spec.policy().interval;
        inner.spec = Arc::new(spec.clone());
        inner.version += 1;
        let view = MonitorView {
            id: id.to_owned(),
            account_id: account_id.to_owned(),
            spec,
            state: inner.state.current.clone(),
            consecutive_failures: inner.state.consecutive_failures,
        };
        drop(inner);
        self.scheduler
            .schedule(key, interval.min(FIRST_CHECK_WITHIN));
        Ok((view, created))
    }

    /// The monitor under `key`, registering a new one (state `unknown`)
    /// within the account's limit; true when it is new.
    fn claim(
        &self,
        key: &MonitorKey,
        spec: &MonitorSpec,
    ) -> Result<(Arc<Monitor>, bool), HeartbeatError> {
        // Counted before taking the entry: iterating while holding it would deadlock.
        let in_account = self
            .checker
            .monitors
            .iter()
            .filter(|e| e.key().account_id == key.account_id)
            .count();
        match self.checker.monitors.entry(key.clone()) {
            Entry::Occupied(e) => Ok((e.get().clone(), false)),
            Entry::Vacant(_) if in_account >= MAX_MONITORS_PER_ACCOUNT => {
                Err(HeartbeatError::TooMany(key.account_id.clone()))
            }
            Entry::Vacant(e) => {
                let monitor = Arc::new(Monitor::new(spec.clone(), MonitorState::default()));
                e.insert(monitor.clone());
                Ok((monitor, true))
            }
        }
    }

    pub async fn get(&self, account_id: &str, id: &str) -> Result<MonitorView, HeartbeatError> {
        let key = MonitorKey::new(account_id, id);
        let stored = self.checker.store.get_monitor(account_id, id).await?;
        let Some(stored) = stored else {
            return Err(key.not_found());
        };
        self.view(stored).await.ok_or_else(|| key.not_found())
    }

    /// The account's monitors, ordered by id.
    pub async fn list(&self, account_id: &str) -> Result<Vec<MonitorView>, HeartbeatError> {
        let stored = self.checker.store.get_monitors(Some(account_id)).await?;
        let mut views = Vec::with_capacity(stored.len());
        for monitor in stored {
            views.extend(self.view(monitor).await);
        }
        Ok(views)
    }

    /// A stored monitor as shown, with the state this node holds for it
    /// when it checks it. That state is read under the monitor's lock, so a
    /// reader who has seen a `health_changed` event sees its state too (the
    /// stored copy is saved a moment after the publish).
    async fn view(&self, stored: StoredMonitor) -> Option<MonitorView> {
        let key = MonitorKey::new(&stored.account_id, &stored.id);
        // Live state is current only where the monitor is checked.
        let live = (self.checker.checks(&key))
            .then(|| self.checker.monitors.get(&key).map(|m| m.clone()))
            .flatten();
        let mut view = MonitorView::from_stored(stored)?;
        if let Some(monitor) = live {
            let inner = monitor.inner.lock().await;
            if inner.removed {
                return None;
            }
            view.state = inner.state.current.clone();
            view.consecutive_failures = inner.state.consecutive_failures;
        }
        Some(view)
    }

    /// Deletes a monitor: no check of it runs or publishes after this
    /// returns, and a `monitor_removed` event takes it out of the snapshot.
    pub async fn delete(&self, account_id: &str, id: &str) -> Result<(), HeartbeatError> {
        let key = MonitorKey::new(account_id, id);
        let monitor = self.checker.monitors.get(&key).map(|m| m.clone());
        let Some(monitor) = monitor else {
            // Not checked here, yet maybe still stored (an earlier delete
            // failed half-way): finish it, so a retried DELETE converges.
            if self
                .checker
                .store
                .get_monitor(account_id, id)
                .await?
                .is_none()
            {
                return Err(key.not_found());
            }
            return self.forget(&key).await;
        };
        let mut inner = monitor.inner.lock().await;
        if inner.removed {
            return Err(key.not_found());
        }
        // The event first: if it fails, nothing has changed and the caller retries.
        self.checker
            .hub
            .publish(
                account_id,
                event::MONITOR_REMOVED,
                events::monitor_removed(id),
                None,
            )
            .await?;
        inner.removed = true;
        monitor.deleted.cancel();
        self.checker
            .monitors
            .remove_if(&key, |_, m| Arc::ptr_eq(m, &monitor));
        self.scheduler.remove(key.clone());
        drop(inner);
        self.checker.leases.release(&turns::lease_name(&key)).await;
        if !self.checker.store.delete_monitor(account_id, id).await? {
            tracing::debug!(account = %account_id, monitor = %id, "monitor was already gone from the store");
        }
        self.checker.history.forget(&key).await;
        Ok(())
    }

    /// Removes what is left of a monitor this node no longer checks.
    async fn forget(&self, key: &MonitorKey) -> Result<(), HeartbeatError> {
        self.checker
            .hub
            .publish(
                &key.account_id,
                event::MONITOR_REMOVED,
                events::monitor_removed(&key.id),
                None,
            )
            .await?;
        self.checker
            .store
            .delete_monitor(&key.account_id, &key.id)
            .await?;
        self.checker.history.forget(key).await;
        Ok(())
    }

    /// Sets a monitor's health by hand. Publishes `health_changed` (with the
    /// override's source) when the health changes, and returns its receipt;
    /// `None` when it already had that health.
    pub async fn set_status(
        &self,
        account_id: &str,
        id: &str,
        request: StatusOverride,
    ) -> Result<Option<Appended>, HeartbeatError> {
        let source = request.source.unwrap_or(Source::Manual);
        if source == Source::Heartbeat {
            return Err(HeartbeatError::Invalid(
                "source must be \"manual\" or \"system\"; \"heartbeat\" is the checker's own"
                    .into(),
            ));
        }
        if request
            .last_error
            .as_ref()
            .is_some_and(|e| e.len() > MAX_OVERRIDE_ERROR_BYTES)
        {
            return Err(HeartbeatError::Invalid(format!(
                "lastError is longer than {MAX_OVERRIDE_ERROR_BYTES} bytes"
            )));
        }
        let key = MonitorKey::new(account_id, id);
        let monitor = self
            .checker
            .monitors
            .get(&key)
            .map(|m| m.clone())
            .ok_or_else(|| key.not_found())?;
        let mut inner = monitor.inner.lock().await;
        if inner.removed {
            return Err(key.not_found());
        }
        let (state, change) = inner.state.overridden(request.health, request.last_error);
        let Some(kind) = change else {
            return Ok(None);
        };
        let body = events::health_changed(id, kind, source, &state.current);
        let appended = self
            .checker
            .hub
            .publish(account_id, event::HEALTH_CHANGED, body, None)
            .await?;
        self.checker.commit(&key, &monitor, &mut inner, state).await;
        Ok(Some(appended))
    }
}
