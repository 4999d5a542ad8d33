//! The store/broker boundary: where sequence numbers, events, snapshots and
//! idempotency records live, and where committed events come back from.
//!
//! One narrow trait, chosen at run time (`Arc<dyn Store>`): SQLite for a
//! single node, Redis for a cluster. Both pass the conformance suite in
//! `tests/store_conformance.rs`. A store also *feeds* the hub: every committed
//! event is sent on the feed channel handed to it at open, per account in
//! sequence order, so the hub never has to re-order.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::event::Event;
use serde::Serialize;
use serde_json::{Map, Value, value::RawValue};
use std::{future::Future, pin::Pin, sync::Arc};
use tokio::sync::mpsc;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Committed events, in per-account sequence order.
pub type Feed = mpsc::Sender<Arc<Event>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// The backing store cannot be reached or refused the write; nothing was stored.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Snapshot sections an event can update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Phones,
    Credentials,
    Monitors,
    Jobs,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Phones,
        Section::Credentials,
        Section::Monitors,
        Section::Jobs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Phones => "phones",
            Section::Credentials => "credentials",
            Section::Monitors => "monitors",
            Section::Jobs => "jobs",
        }
    }

    pub fn parse(s: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|section| section.as_str() == s)
    }
}

/// What an event carries and what it does to the snapshot.
#[derive(Clone)]
pub enum Body {
    /// Data known up front (already JSON); the snapshot is untouched.
    Fixed(Box<RawValue>),
    /// Data and the entry's next value derived together from the entry's
    /// previous value: a report's entry is its data, `health_changed` keeps
    /// only `current`, a deleted monitor removes its entry.
    Entry {
        section: Section,
        key: String,
        derive: Derive,
    },
}

/// What a [`Body::Entry`] event carries and leaves in the snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryChange {
    /// The event's data.
    pub data: Value,
    /// The entry's next value; `None` removes the entry.
    pub entry: Option<Value>,
}

impl EntryChange {
    /// An event whose data becomes the entry's new value.
    pub fn kept(data: Value) -> Self {
        EntryChange {
            entry: Some(data.clone()),
            data,
        }
    }
}

/// Derives a [`Body::Entry`] event from the entry's previous value. Run
/// inside the append's atomic step (possibly more than once by stores that
/// retry), so it must be pure.
pub type Derive = Arc<dyn Fn(Option<&Value>) -> EntryChange + Send + Sync>;

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

/// `Idempotency-Key` plus a fingerprint of the request it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// An event the hub wants appended; the store assigns its `seq`.
#[derive(Clone)]
pub struct Draft {
    pub account_id: String,
    pub event: String,
    pub id: String,
    pub published_at: String,
    pub body: Body,
    pub idempotency: Option<Idempotency>,
}

/// The answer to a publish, as the HTTP API returns it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub id: String,
    pub account_id: String,
    pub seq: u64,
    pub published_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored and sequenced.
    New(Receipt),
    /// The idempotency key was seen before: the first answer, nothing stored.
    Replayed(Receipt),
}

impl Appended {
    pub fn receipt(&self) -> &Receipt {
        match self {
            Appended::New(r) | Appended::Replayed(r) => r,
        }
    }
}

/// The latest state of an account and the seq it reflects.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub account_id: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    pub phones: Map<String, Value>,
    pub credentials: Map<String, Value>,
    pub monitors: Map<String, Value>,
    pub jobs: Map<String, Value>,
}

impl Snapshot {
    pub fn section_mut(&mut self, section: Section) -> &mut Map<String, Value> {
        match section {
            Section::Phones => &mut self.phones,
            Section::Credentials => &mut self.credentials,
            Section::Monitors => &mut self.monitors,
            Section::Jobs => &mut self.jobs,
        }
    }
}

/// Retained events after a given seq.
#[derive(Clone, Debug)]
pub struct History {
    /// Events after `since`, ascending, at most the page limit.
    pub events: Vec<Event>,
    /// The account's latest seq when read.
    pub head: u64,
    /// False when events between `since` and the first returned one are no
    /// longer retained (or `since` is ahead of the account): the reader must
    /// start over from a snapshot.
    pub complete: bool,
}

/// The persistence and ordering boundary. Every method is cancel-safe from the
/// caller's side: dropping a future never leaves a half-applied append.
pub trait Store: Send + Sync + 'static {
    /// Appends one event atomically: assigns the account's next seq (no gaps),
    /// stores the event, updates its snapshot entry and records its
    /// idempotency key, all or nothing. `Ok` means durable: it survives a crash
    /// of the process (SQLite: fsync'd WAL). The committed event is sent on the
    /// feed before this returns. A key seen before answers `Replayed` with the
    /// first receipt and stores nothing.
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended>;

    /// The account's snapshot, consistent with its `seq` (one read transaction).
    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot>;

    /// Up to `limit` retained events with seq > `since`, ascending.
    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History>;

    /// Drops events older than the retention age and expired idempotency
    /// records. Returns how many events were dropped. Safe to run any time.
    fn trim(&self) -> StoreFuture<'_, u64>;

    /// Succeeds when the store can serve reads and writes (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    // Heartbeat monitors. Writes to one store are applied in the order they
    // are submitted, so a caller that awaits one write before starting the
    // next sees them applied in that order; a read started after a write's
    // `Ok` sees it. `Ok` from a write means durable, as for `append`.

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
