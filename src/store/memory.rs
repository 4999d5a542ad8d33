//! An event log kept in process memory, for tests of the hub that need real
//! log semantics (gapless seqs, derived snapshot entries, idempotency,
//! retention and the `complete` flag, the feed) without a database file.
//!
//! It passes the same conformance suite as SQLite, except durability: its
//! contents end with the process. Ages are measured on tokio's clock, so a
//! test with a paused clock controls retention by age.

use super::{
    Appended, Body, Draft, EntryChange, EventLog, Feed, History, Receipt, Snapshot, StoreError,
    StoreFuture,
};
use crate::{config::Retention, event::Event};
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::{sync::Mutex, time::Instant};

/// The event log in memory. One lock orders every append, so the feed gets
/// events in commit order.
pub struct MemoryLog {
    /// Memory starts empty: each log is a new sequence, so a new epoch.
    epoch: String,
    retention: Retention,
    feed: Feed,
    accounts: Mutex<HashMap<String, Account>>,
    /// Set by `close`: every later call fails.
    closed: AtomicBool,
}

#[derive(Default)]
struct Account {
    head: u64,
    /// Retained events, ascending by seq, with when each was stored.
    events: VecDeque<(Event, Instant)>,
    /// The snapshot's entries (its `account_id` and `seq` are filled on read).
    entries: Snapshot,
    /// Idempotency key → fingerprint, first receipt, when it was recorded.
    idempotency: HashMap<String, (String, Receipt, Instant)>,
}

impl MemoryLog {
    /// An empty log that sends every committed event on `feed`.
    pub fn new(retention: Retention, feed: Feed) -> Self {
        MemoryLog {
            epoch: hex::encode(rand::random::<[u8; 8]>()),
            retention,
            feed,
            accounts: Mutex::default(),
            closed: AtomicBool::new(false),
        }
    }

    async fn append_now(&self, draft: Draft) -> Result<Appended, StoreError> {
        let mut accounts = self.accounts.lock().await;
        // Checked under the lock `close` takes: no append lands after it.
        self.open()?;
        // Room on the feed first, so a cancelled append has changed nothing
        // and a committed one is always fed. A closed feed only means the
        // hub is shutting down: the event is still stored.
        let permit = self.feed.reserve().await.ok();
        let now = Instant::now();
        let account = accounts.entry(draft.account_id.clone()).or_default();
        if let Some(idem) = &draft.idempotency {
            let live = |at: &Instant| now.duration_since(*at) <= self.retention.idempotency_ttl;
            if let Some((fingerprint, receipt, _)) = account
                .idempotency
                .get(&idem.key)
                .filter(|(_, _, at)| live(at))
            {
                if *fingerprint != idem.fingerprint {
                    return Err(StoreError::IdempotencyConflict);
                }
                return Ok(Appended::Replayed(receipt.clone()));
            }
        }

        // Everything fallible happens before the first change.
        let seq = account.head + 1;
        let (data, entry) = match &draft.body {
            Body::Fixed(data) => (data.clone(), None),
            Body::Entry {
                section,
                key,
                derive,
            } => {
                let previous = account.entries.section_mut(*section).get(key);
                let EntryChange { data, entry } = derive(previous);
                let data = serde_json::value::to_raw_value(&data)
                    .map_err(|e| StoreError::Unavailable(format!("event data: {e}")))?;
                (data, Some((*section, key, entry)))
            }
        };

        if let Some((section, key, entry)) = entry {
            let entries = account.entries.section_mut(section);
            match entry {
                Some(value) => entries.insert(key.clone(), value),
                None => entries.remove(key),
            };
        }
        let event = Event {
            event: draft.event,
            account_id: draft.account_id,
            seq,
            id: draft.id,
            published_at: draft.published_at,
            data,
        };
        let receipt = Receipt {
            id: event.id.clone(),
            account_id: event.account_id.clone(),
            seq,
            published_at: event.published_at.clone(),
        };
        if let Some(idem) = draft.idempotency {
            account
                .idempotency
                .insert(idem.key, (idem.fingerprint, receipt.clone(), now));
        }
        account.head = seq;
        account.events.push_back((event.clone(), now));
        let keep_after = seq.saturating_sub(self.retention.max_events);
        while account
            .events
            .front()
            .is_some_and(|(e, _)| e.seq <= keep_after)
        {
            account.events.pop_front();
        }
        if let Some(permit) = permit {
            permit.send(Arc::new(event));
        }
        Ok(Appended::New(receipt))
    }
}

impl EventLog for MemoryLog {
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended> {
        Box::pin(self.append_now(draft))
    }

    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot> {
        Box::pin(async move {
            self.open()?;
            let accounts = self.accounts.lock().await;
            let Some(account) = accounts.get(account_id) else {
                return Ok(Snapshot {
                    account_id: account_id.to_owned(),
                    epoch: self.epoch.clone(),
                    ..Snapshot::default()
                });
            };
            Ok(Snapshot {
                account_id: account_id.to_owned(),
                epoch: self.epoch.clone(),
                seq: account.head,
                ..account.entries.clone()
            })
        })
    }

    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History> {
        Box::pin(async move {
            self.open()?;
            let accounts = self.accounts.lock().await;
            let Some(account) = accounts.get(account_id) else {
                return Ok(History {
                    events: Vec::new(),
                    head: 0,
                    complete: since == 0,
                    epoch: self.epoch.clone(),
                });
            };
            let head = account.head;
            let first = account.events.front().map(|(e, _)| e.seq);
            let complete = since == head || (since < head && first.is_some_and(|f| f <= since + 1));
            let events = account
                .events
                .iter()
                .map(|(e, _)| e)
                .filter(|e| e.seq > since)
                .take(limit)
                .cloned()
                .collect();
            Ok(History {
                events,
                head,
                complete,
                epoch: self.epoch.clone(),
            })
        })
    }

    fn trim(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.open()?;
            let now = Instant::now();
            let expired = |at: &Instant, max: std::time::Duration| now.duration_since(*at) > max;
            let mut dropped = 0;
            for account in self.accounts.lock().await.values_mut() {
                let before = account.events.len();
                account
                    .events
                    .retain(|(_, at)| !expired(at, self.retention.max_age));
                dropped += (before - account.events.len()) as u64;
                account
                    .idempotency
                    .retain(|_, (_, _, at)| !expired(at, self.retention.idempotency_ttl));
            }
            Ok(dropped)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { self.open() })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async {
            // Under the lock: appends in progress finish (and are fed) first.
            let _accounts = self.accounts.lock().await;
            self.closed.store(true, Ordering::Release);
            Ok(())
        })
    }
}

impl MemoryLog {
    fn open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("store closed".into()));
        }
        Ok(())
    }
}
