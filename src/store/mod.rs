//! The store/broker boundary: where sequence numbers, events, snapshots,
//! idempotency records and monitors live, and where committed events come
//! back from.
//!
//! The store is split by role, one narrow trait each, so every subsystem
//! depends only on what it uses:
//!
//! - [`EventLog`] (`log`): append, snapshot, events_since, trim, ping — the hub's
//!   only view of the store. It also *feeds* the hub: every committed event is
//!   sent on the feed channel handed to it at open, per account in sequence
//!   order, so the hub never has to re-order.
//! - [`MonitorStore`] (`monitors`): heartbeat monitors' settings and check state.
//! - [`MonitorHistory`] (`history`): every check result for a window, downsampled.
//! - [`JobStore`] (`jobs`): tracked sync jobs and their one-running-per-kind guard.
//! - [`LeaseStore`] (`leases`): named leases with an expiry, so one node of
//!   a cluster does a job (checks a monitor) while it lives.
//! - [`RateStore`] (`rates`): token buckets, so a rate limit holds across nodes.
//! - [`PresenceStore`] (`presence`): each node's live connections, expiring
//!   with the node ([`MemoryPresence`] for a single node).
//! - [`WebhookRegistry`] and [`Outbox`] (`webhooks`): subscribed endpoints and
//!   the deliveries owed to them, written by `append` in its atomic step.
//!
//! Later roles (sync jobs, monitor history) each get a trait of their own
//! here and a field in [`Stores`].
//!
//! Implementations are chosen at run time and handed to the server as one
//! [`Stores`] bundle of `Arc<dyn …>`. [`SqliteStore`] implements every role for
//! a single node; [`MemoryLog`] is an event log kept in memory, for tests of
//! the hub; [`RedisStore`] implements every role on Redis (cluster mode,
//! `redis`). Each passes the conformance suite in `tests/store_conformance.rs`.

mod history;
pub mod jobs;
mod leases;
mod log;
mod memory;
mod monitors;
mod presence;
mod rates;
pub mod redis;
mod sqlite;
mod webhooks;

pub use crate::event::Section;
pub use history::{
    AccountCounts, Bucket, CheckRecord, HistoryPolicy, HistoryRange, MAX_TRANSITIONS,
    MonitorHistory, Transition,
};
pub use jobs::{JobQuery, JobStore, StoredJob};
pub use leases::{LeaseGrant, LeaseStore, MemoryLeases};
pub use log::{
    Appended, Body, Derive, Draft, EntryChange, EventLog, Feed, History, Idempotency, Receipt,
    Snapshot,
};
pub use memory::MemoryLog;
pub use monitors::{MonitorStore, StoredMonitor};
pub use presence::{MemoryPresence, PresenceEntry, PresenceStore, sort_entries as presence_sort};
pub use rates::{MemoryRates, RateStore};
pub use redis::{ConnectError, Durability, FanoutReport, FanoutStats, RedisSettings, RedisStore};
pub use sqlite::SqliteStore;
pub use webhooks::{
    Attempt, Delivery, DeliveryStatus, Endpoint, NewDelivery, Next, Outbox, OutboxDepth,
    PreviousSecret, PutWebhook, WebhookRegistry, fill_services_notified, pattern_matches, rotated,
    subscribed,
};

use crate::config::Retention;
use std::{future::Future, path::Path, pin::Pin, sync::Arc};

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// The backing store cannot be reached or refused the write; nothing was stored.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Every store role the server runs with, chosen at run time. Roles may be
/// served by one backend (SQLite serves all) or by different ones.
#[derive(Clone)]
pub struct Stores {
    pub log: Arc<dyn EventLog>,
    pub monitors: Arc<dyn MonitorStore>,
    pub history: Arc<dyn MonitorHistory>,
    pub jobs: Arc<dyn JobStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub rates: Arc<dyn RateStore>,
    /// In this process unless a cluster store serves it (`RedisStore`).
    pub presence: Arc<dyn PresenceStore>,
    pub webhooks: Arc<dyn WebhookRegistry>,
    pub outbox: Arc<dyn Outbox>,
}

impl Stores {
    /// Every role served by one backend.
    pub fn shared<S>(store: Arc<S>) -> Stores
    where
        S: EventLog
            + MonitorStore
            + MonitorHistory
            + JobStore
            + LeaseStore
            + RateStore
            + WebhookRegistry
            + Outbox,
    {
        Stores {
            log: store.clone(),
            history: store.clone(),
            jobs: store.clone(),
            leases: store.clone(),
            rates: store.clone(),
            webhooks: store.clone(),
            outbox: store.clone(),
            monitors: store,
            presence: Arc::new(MemoryPresence::default()),
        }
    }

    /// Closes every backend (see [`EventLog::close`]). SQLite serves every
    /// role, so closing its log closes it; a role on another backend adds
    /// its close here.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.log.close().await
    }

    /// The single-node stores: one SQLite file under `data_dir`, whose event
    /// log sends every committed event on `feed`.
    pub fn sqlite(data_dir: &Path, retention: Retention, feed: Feed) -> Result<Stores, StoreError> {
        Ok(Stores::shared(Arc::new(SqliteStore::open(
            data_dir, retention, feed,
        )?)))
    }
}
