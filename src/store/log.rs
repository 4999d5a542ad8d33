//! The event log role: sequencing, persisting and replaying an account's
//! events, its snapshot, and the idempotency records of publishes.
//!
//! Everything the hub needs from a store lives here, and nothing else: the
//! hub holds an `Arc<dyn EventLog>` and never sees monitors or other roles.

use super::StoreFuture;
use crate::event::{Event, Section};
use serde::Serialize;
use serde_json::{Map, Value, value::RawValue};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Committed events, in per-account sequence order.
pub type Feed = mpsc::Sender<Arc<Event>>;

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
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub account_id: String,
    pub seq: u64,
    /// Names the account's sequence: it changes only when the store lost the
    /// account's history (and seqs restarted), so a client holding a seq from
    /// another epoch must start over.
    pub epoch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// `phone_status_changed` data by phone number id.
    #[schema(value_type = HashMap<String, Object>)]
    pub phones: Map<String, Value>,
    /// `status_sync` data by provider.
    #[schema(value_type = HashMap<String, Object>)]
    pub credentials: Map<String, Value>,
    /// Each monitor's current state by monitor id.
    #[schema(value_type = HashMap<String, Object>)]
    pub monitors: Map<String, Value>,
    /// `sync_progress` data by sync id.
    #[schema(value_type = HashMap<String, Object>)]
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
    /// The account's epoch when read (see [`Snapshot::epoch`]).
    pub epoch: String,
}

/// The event log: the persistence and ordering boundary of events.
///
/// Ordering: each account's events get seqs 1, 2, 3… with no gaps, and the
/// feed (handed to the implementation when it is opened) carries every
/// committed event exactly once, per account in seq order. Accounts are
/// independent; no order holds between them.
///
/// Durability: `Ok` from `append` means the event survives a crash of the
/// process (SQLite: fsync'd WAL; the in-memory log: until the process ends).
///
/// Every method is cancel-safe from the caller's side: dropping a future
/// never leaves a half-applied append.
pub trait EventLog: Send + Sync + 'static {
    /// Appends one event atomically: assigns the account's next seq (no gaps),
    /// stores the event, updates its snapshot entry and records its
    /// idempotency key, all or nothing. `Ok` means durable (see above). The
    /// committed event is sent on the feed before this returns. A key seen
    /// before answers `Replayed` with the first receipt and stores nothing.
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended>;

    /// The account's snapshot, consistent with its `seq` (one read), and
    /// reflecting at least every append that returned `Ok` before it started.
    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot>;

    /// Up to `limit` retained events with seq > `since`, ascending, read
    /// consistently with the returned `head`.
    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History>;

    /// Drops events older than the retention age and expired idempotency
    /// records. Returns how many events were dropped. Safe to run any time;
    /// never changes a head or a snapshot.
    fn trim(&self) -> StoreFuture<'_, u64>;

    /// Succeeds when the log can serve reads and writes (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Closes the log — and the backend under it, with every role it serves
    /// (SQLite: the monitors too) — for good; the server calls it last in
    /// its shutdown order. When it returns, every write submitted before it
    /// is committed (or failed) and answered, its events were sent on the
    /// feed, and the backend left nothing to recover on the next open
    /// (SQLite: the WAL is checkpointed). Every later call, and any write
    /// still queued behind it, fails with [`StoreError::Unavailable`].
    /// Closing twice is harmless.
    fn close(&self) -> StoreFuture<'_, ()>;
}
