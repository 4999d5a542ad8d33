//! The running side of the heartbeat: one [`Monitor`] per registered
//! monitor (its lock, settings version and state) and the [`Checker`] the
//! scheduler drives to probe a monitor and apply the result.
//!
//! Everything that changes a monitor's state goes through the monitor's lock
//! and [`Checker::commit`], whether the change comes from a check (here) or
//! from the API (`manage`), so a late check can never undo a delete or
//! publish over an override.

use super::{
    Health, MonitorKey, MonitorSpec, MonitorState, Source, events,
    machine::Check,
    probe::Prober,
    scheduler::{Runner, Turn},
    stats,
};
use crate::{cluster::Leases, event, hub::Hub, store::MonitorStore};
use dashmap::DashMap;
use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};
use tokio_util::sync::CancellationToken;

pub(super) struct Monitor {
    /// Mirror of the health, for stats without taking the lock.
    pub(super) health: AtomicU8,
    /// Cancelled on delete: a check under way is abandoned rather than
    /// holding an in-flight slot until its timeout.
    pub(super) deleted: CancellationToken,
    pub(super) inner: tokio::sync::Mutex<Inner>,
}

pub(super) struct Inner {
    pub(super) spec: Arc<MonitorSpec>,
    /// Bumped by every put, so a check of older settings is not applied.
    pub(super) version: u64,
    pub(super) state: MonitorState,
    pub(super) removed: bool,
}

impl Monitor {
    pub(super) fn new(spec: MonitorSpec, state: MonitorState) -> Monitor {
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

pub(super) fn health_code(health: Health) -> u8 {
    match health {
        Health::Unknown => 0,
        Health::Healthy => 1,
        Health::Unhealthy => 2,
    }
}

/// What checks need; the scheduler's [`Runner`].
pub(super) struct Checker {
    pub(super) hub: Arc<Hub>,
    pub(super) store: Arc<dyn MonitorStore>,
    pub(super) prober: Prober,
    pub(super) monitors: DashMap<MonitorKey, Arc<Monitor>>,
    pub(super) counters: stats::Counters,
    /// Where every applied check is kept (`history`).
    pub(super) history: super::history::Recorder,
    /// Whose turn it is to check a monitor (`turns`).
    pub(super) leases: Arc<Leases>,
}

impl Checker {
    /// Adopts a monitor's new state and saves it. A failed save is only
    /// logged: the state in memory is right, and what was saved before
    /// still resumes correctly (see [`MonitorState::resume`]).
    pub(super) async fn commit(
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

    async fn turn(&self, key: &MonitorKey) -> Turn {
        self.take_turn(key).await
    }

    async fn planned(&self, key: &MonitorKey, until: Duration) {
        self.keep_turn(key, until).await
    }

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
        let record = super::history::record_of(&check, step.state.health(), step.change);
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
        self.history.keep(key, record).await;
        Some(step.delay)
    }
}
