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
//! [`stats`] (figures). The handle [`Heartbeat`] (start, resume, stop,
//! figures) is here; `manage` holds the API's operations on monitors,
//! `checker` the running monitors and their checks, `view` the API shapes,
//! `history` what is kept of every check; `turns` which node checks a
//! monitor (its lease) in a cluster.

mod checker;
mod events;
mod history;
pub mod machine;
mod manage;
mod probe;
pub mod scheduler;
pub mod spec;
pub mod stats;
mod turns;
mod view;

pub use machine::{Current, Health, Kind, MonitorState, Source};
pub use spec::{MonitorSpec, SpecLimits, StatusRange};
pub use stats::HeartbeatStats;
pub use view::{MonitorView, StatusOverride};

use crate::{
    cluster::{self, Leases},
    config::MonitorSettings,
    event,
    hub::{Hub, HubError},
    store::{HistoryPolicy, MonitorHistory, MonitorStore, StoreError},
};
use checker::{Checker, Monitor};
use dashmap::DashMap;
use probe::Prober;
use scheduler::Scheduler;
use std::{collections::HashMap, sync::Arc, sync::atomic::Ordering, time::Duration};
use tokio_util::sync::CancellationToken;

/// Monitors one account may register.
pub const MAX_MONITORS_PER_ACCOUNT: usize = 1000;
/// A new or changed monitor is first checked within this (or its interval, if shorter).
pub const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(1);

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

pub struct Heartbeat {
    checker: Arc<Checker>,
    scheduler: Arc<Scheduler<MonitorKey>>,
    limits: SpecLimits,
    /// Stops the adoption of monitors registered through other nodes.
    adopting: CancellationToken,
}

impl Heartbeat {
    /// Loads every stored monitor, resuming its last known state, and
    /// starts checking them (spread over one interval each). A single node:
    /// it checks every monitor.
    pub async fn start(
        hub: Arc<Hub>,
        store: Arc<dyn MonitorStore>,
        settings: &MonitorSettings,
    ) -> Result<Heartbeat, HeartbeatError> {
        let leases = Arc::new(Leases::single(&cluster::new_node_id()));
        Self::start_with(hub, store, history::Recorder::default(), leases, settings).await
    }

    /// As [`Heartbeat::start`], keeping every check in `history` for
    /// `settings.history` (see [`HistoryPolicy`]) and checking each monitor
    /// only while this node holds its lease (see `turns`); with shared
    /// leases (cluster mode) it also adopts monitors registered through
    /// other nodes.
    pub async fn start_recording(
        hub: Arc<Hub>,
        store: Arc<dyn MonitorStore>,
        history: Arc<dyn MonitorHistory>,
        leases: Arc<Leases>,
        settings: &MonitorSettings,
    ) -> Result<Heartbeat, HeartbeatError> {
        let recorder = history::Recorder::new(history, HistoryPolicy::keeping(settings.history));
        Self::start_with(hub, store, recorder, leases, settings).await
    }

    async fn start_with(
        hub: Arc<Hub>,
        store: Arc<dyn MonitorStore>,
        history: history::Recorder,
        leases: Arc<Leases>,
        settings: &MonitorSettings,
    ) -> Result<Heartbeat, HeartbeatError> {
        let shared = leases.shared();
        let checker = Arc::new(Checker {
            hub,
            store,
            prober: Prober::new(settings.deny_private)?,
            monitors: DashMap::new(),
            counters: stats::Counters::default(),
            history,
            leases,
        });
        let scheduler = Arc::new(Scheduler::start(checker.clone(), settings.max_in_flight));
        let adopting = CancellationToken::new();
        if shared {
            tokio::spawn(turns::adopt(
                checker.clone(),
                Arc::downgrade(&scheduler),
                adopting.clone(),
            ));
        }
        let heartbeat = Heartbeat {
            checker,
            scheduler,
            limits: SpecLimits {
                min_interval: settings.min_interval,
            },
            adopting,
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
    /// recorded finish, then the monitors' leases are given back so other
    /// nodes take over at once. Safe to call more than once.
    pub async fn stop(&self) {
        self.adopting.cancel();
        self.scheduler.stop().await;
        self.checker.leases.release_all().await;
    }

    /// Stops checking at once, giving nothing back, as a dying process
    /// would: other nodes take over when the leases run out.
    pub fn halt(&self) {
        self.adopting.cancel();
        self.scheduler.halt();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.halt();
    }
}
