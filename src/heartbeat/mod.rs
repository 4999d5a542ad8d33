//! Heartbeat monitors: the hub checks the HTTP endpoints backends register
//! and tells the account's tabs when one really changes health.
//!
//! The heartbeat is an event source like the HTTP API: every change goes
//! through [`Hub::publish`] (persisted, sequenced, in the snapshot), so tabs
//! need nothing monitor-specific to stay current or to resume. It owns the
//! monitors' lifecycle: settings and check state are kept in the store so a
//! restart resumes them, and one lock per monitor orders its checks,
//! overrides and deletion, so a check finishing late can never undo a delete
//! or publish over an override.
//!
//! Parts: [`spec`] (settings and validation), [`machine`] (pure state
//! machine), `probe` (the HTTP check), [`scheduler`] (one timer for all
//! monitors, in-flight limit, jitter), `events` (what is published),
//! [`stats`] (figures).

mod events;
pub mod machine;
mod probe;
pub mod scheduler;
pub mod spec;
pub mod stats;

pub use machine::{Current, Health, Kind, MonitorState, Source};
pub use spec::{MonitorSpec, SpecLimits, StatusRange};
pub use stats::HeartbeatStats;

use crate::{
    config::MonitorSettings,
    event,
    hub::{Hub, HubError},
    store::{Appended, MonitorStore, StoreError, StoredMonitor},
};
use dashmap::{DashMap, mapref::entry::Entry};
use machine::Check;
use probe::Prober;
use scheduler::{Runner, Scheduler};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// Monitors one account may register.
pub const MAX_MONITORS_PER_ACCOUNT: usize = 1000;
/// A new or changed monitor is first checked within this (or its interval, if shorter).
pub const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(1);
const MAX_OVERRIDE_ERROR_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("{0}")]
    Invalid(String),
    #[error("no monitor {id:?} in account {account_id}")]
    NotFound { account_id: String, id: String },
    #[error("account {0} already has {MAX_MONITORS_PER_ACCOUNT} monitors")]
    TooMany(String),
    #[error("monitor {0:?} was deleted while being changed; try again")]
    Conflict(String),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Monitor ids share the plain alphabet of account ids: they appear in paths and event data.
pub fn valid_monitor_id(id: &str) -> bool {
    event::valid_account_id(id)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorKey {
    pub account_id: String,
    pub id: String,
}

impl MonitorKey {
    fn new(account_id: &str, id: &str) -> Self {
        MonitorKey {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
        }
    }

    fn not_found(&self) -> HeartbeatError {
        HeartbeatError::NotFound {
            account_id: self.account_id.clone(),
            id: self.id.clone(),
        }
    }
}

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
    fn from_stored(stored: StoredMonitor) -> Option<MonitorView> {
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

struct Monitor {
    /// Mirror of the health, for stats without taking the lock.
    health: AtomicU8,
    /// Cancelled on delete: a check under way is abandoned rather than
    /// holding an in-flight slot until its timeout.
    deleted: CancellationToken,
    inner: tokio::sync::Mutex<Inner>,
}

struct Inner {
    spec: Arc<MonitorSpec>,
    /// Bumped by every put, so a check of older settings is not applied.
    version: u64,
    state: MonitorState,
    removed: bool,
}

impl Monitor {
    fn new(spec: MonitorSpec, state: MonitorState) -> Monitor {
        Monitor {
            health: AtomicU8::new(health_code(state.health())),
            deleted: CancellationToken::new(),
            inner: tokio::sync::Mutex::new(Inner {
                spec: Arc::new(spec),
                version: 0,
                state,
                removed: false,
            }),
        }
    }
}

fn health_code(health: Health) -> u8 {
    match health {
        Health::Unknown => 0,
        Health::Healthy => 1,
        Health::Unhealthy => 2,
    }
}

/// What checks need; the scheduler's [`Runner`].
struct Checker {
    hub: Arc<Hub>,
    store: Arc<dyn MonitorStore>,
    prober: Prober,
    monitors: DashMap<MonitorKey, Arc<Monitor>>,
    counters: stats::Counters,
}

pub struct Heartbeat {
    checker: Arc<Checker>,
    scheduler: Scheduler<MonitorKey>,
    limits: SpecLimits,
}

impl Heartbeat {
    /// Loads every stored monitor, resuming its last known state, and
    /// starts checking them (spread over one interval each).
    pub async fn start(
        hub: Arc<Hub>,
        store: Arc<dyn MonitorStore>,
        settings: &MonitorSettings,
    ) -> Result<Heartbeat, HeartbeatError> {
        let checker = Arc::new(Checker {
            hub,
            store,
            prober: Prober::new()?,
            monitors: DashMap::new(),
            counters: stats::Counters::default(),
        });
        let scheduler = Scheduler::start(checker.clone(), settings.max_in_flight);
        let heartbeat = Heartbeat {
            checker,
            scheduler,
            limits: SpecLimits {
                min_interval: settings.min_interval,
            },
        };
        if let Err(e) = heartbeat.resume().await {
            heartbeat.stop().await;
            return Err(e);
        }
        Ok(heartbeat)
    }

    async fn resume(&self) -> Result<(), HeartbeatError> {
        let stored = self.checker.store.get_monitors(None).await?;
        let mut published: HashMap<String, serde_json::Map<String, serde_json::Value>> =
            HashMap::new();
        for monitor in stored {
            let Ok(spec) = serde_json::from_value::<MonitorSpec>(monitor.spec) else {
                tracing::warn!(account = %monitor.account_id, monitor = %monitor.id, "skipping a stored monitor with unreadable settings");
                continue;
            };
            if !published.contains_key(&monitor.account_id) {
                let snapshot = self.checker.hub.snapshot(&monitor.account_id).await?;
                published.insert(monitor.account_id.clone(), snapshot.monitors);
            }
            let told = published
                .get(&monitor.account_id)
                .and_then(|entries| entries.get(&monitor.id))
                .and_then(Current::from_entry);
            let saved = monitor.state.and_then(|s| serde_json::from_value(s).ok());
            let state = MonitorState::resume(saved, told, &spec.policy());
            let interval = spec.policy().interval;
            let key = MonitorKey::new(&monitor.account_id, &monitor.id);
            self.checker
                .monitors
                .insert(key.clone(), Arc::new(Monitor::new(spec, state)));
            self.scheduler.schedule(key, interval);
        }
        tracing::info!(monitors = self.checker.monitors.len(), "heartbeat resumed");
        Ok(())
    }

    pub fn limits(&self) -> SpecLimits {
        self.limits
    }

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
        let live = self.checker.monitors.get(&key).map(|m| m.clone());
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
        if !self.checker.store.delete_monitor(account_id, id).await? {
            tracing::debug!(account = %account_id, monitor = %id, "monitor was already gone from the store");
        }
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

    /// The heartbeat's figures now.
    pub fn stats(&self) -> HeartbeatStats {
        let mut health = [0u64; 3];
        for monitor in self.checker.monitors.iter() {
            let code = monitor.health.load(Ordering::Relaxed) as usize;
            if let Some(count) = health.get_mut(code) {
                *count += 1;
            }
        }
        HeartbeatStats::new(
            &self.checker.counters,
            health,
            self.scheduler.in_flight(),
            self.scheduler.max_in_flight(),
        )
    }

    /// Stops checking: probes in progress are dropped, results being
    /// recorded finish. Safe to call more than once.
    pub async fn stop(&self) {
        self.scheduler.stop().await;
    }
}

impl Checker {
    /// Adopts a monitor's new state and saves it. A failed save is only
    /// logged: the state in memory is right, and what was saved before
    /// still resumes correctly (see [`MonitorState::resume`]).
    async fn commit(
        &self,
        key: &MonitorKey,
        monitor: &Monitor,
        inner: &mut Inner,
        state: MonitorState,
    ) {
        monitor
            .health
            .store(health_code(state.health()), Ordering::Relaxed);
        let saved = serde_json::to_value(&state).unwrap_or_default();
        inner.state = state;
        if let Err(e) = self
            .store
            .save_monitor_state(&key.account_id, &key.id, saved)
            .await
        {
            tracing::warn!(account = %key.account_id, monitor = %key.id, error = %e, "could not save a monitor's state");
        }
    }
}

impl Runner<MonitorKey> for Checker {
    type Probe = (Arc<Monitor>, u64, Check);

    async fn probe(&self, key: &MonitorKey) -> Option<Self::Probe> {
        let monitor = self.monitors.get(key).map(|m| m.clone())?;
        let (spec, version) = {
            let inner = monitor.inner.lock().await;
            if inner.removed {
                return None;
            }
            (inner.spec.clone(), inner.version)
        };
        let check = tokio::select! {
            _ = monitor.deleted.cancelled() => return None,
            check = self.prober.check(&spec) => check,
        };
        self.counters.record(check.latency_ms, check.passed());
        Some((monitor, version, check))
    }

    async fn apply(
        &self,
        key: &MonitorKey,
        (monitor, version, check): Self::Probe,
    ) -> Option<Duration> {
        let mut inner = monitor.inner.lock().await;
        if inner.removed {
            return None;
        }
        let policy = inner.spec.policy();
        if inner.version != version {
            // Checked with settings that have since changed; the put planned a fresh check.
            return Some(policy.interval);
        }
        let step = inner.state.apply(&policy, &check);
        if let Some(kind) = step.change {
            let body =
                events::health_changed(&key.id, kind, Source::Heartbeat, &step.state.current);
            if let Err(e) = self
                .hub
                .publish(&key.account_id, event::HEALTH_CHANGED, body, None)
                .await
            {
                // Nothing changed for anyone: the next check finds the same change.
                tracing::warn!(account = %key.account_id, monitor = %key.id, error = %e, "could not publish a monitor's change");
                return Some(step.delay);
            }
        }
        self.commit(key, &monitor, &mut inner, step.state).await;
        Some(step.delay)
    }
}
