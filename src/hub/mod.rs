//! The hub: the one publish path and this node's subscribers.
//!
//! Publishing hands a draft to the store, which sequences and persists it and
//! then feeds it back; a single dispatcher task fans each fed event out to the
//! account's subscriptions with non-blocking sends, so a slow connection is
//! cut off instead of slowing anyone else. The same path serves every event
//! source (HTTP API, heartbeat) and every transport.
//!
//! The dispatcher and the retention task stop when [`Hub::stop`] is called
//! (the server does, in its shutdown order) or when the store closes the
//! feed. They hold the hub only weakly, so a hub dropped without `stop` (in
//! tests) is not kept alive by its own tasks; shutdown does not rely on it.

mod dispatch;
mod subscription;

pub use subscription::{
    Caught, Interest, Offer, Outbound, Resume, Sink, SinkError, Subscription, Who,
};

pub use crate::{disconnect::DisconnectReason, metrics::Transport};

use crate::{
    config::Limits,
    event::{self, Event},
    filter::Facts,
    metrics::{EventCounters, Metrics},
    store::{Appended, Body, Draft, EventLog, Idempotency, Snapshot, StoreError},
};
use dashmap::DashMap;
use std::{
    any::Any,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events read from the store per page during a catch-up.
const CATCH_UP_PAGE: usize = 500;
/// How often old events and idempotency records are trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(600);

/// A committed event as the hub fans it out: one per event, shared by every
/// subscriber of every transport. The hub deals in events only; the
/// transports' encodings of it (built once, on first use, by
/// [`crate::transport::wire`]) live in an opaque slot the hub never reads.
pub struct Published {
    pub event: Event,
    encodings: OnceLock<Box<dyn Any + Send + Sync>>,
    /// What filters compare, read from the data once, for filtered subscribers only.
    facts: OnceLock<Box<Facts>>,
    counters: Arc<EventCounters>,
}

impl Published {
    fn new(event: Event, metrics: &Metrics) -> Self {
        Published {
            counters: metrics.event(&event.event),
            event,
            encodings: OnceLock::new(),
            facts: OnceLock::new(),
        }
    }

    /// The event as filters see it, read on first use.
    pub fn facts(&self) -> &Facts {
        self.facts
            .get_or_init(|| Box::new(Facts::of_event(&self.event)))
    }

    /// The per-event cache of an encoder, created empty on first use. The
    /// slot holds one type (the wire module's); `None` if asked for another.
    pub fn encodings<T: Any + Send + Sync + Default>(&self) -> Option<&T> {
        self.encodings
            .get_or_init(|| Box::new(T::default()))
            .downcast_ref()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account's subscriptions on this node, and the snapshot the next ones
/// to connect are served. A reconnect storm (a deploy, a network blip) would
/// otherwise read the same snapshot from the store once per connection.
/// The cached snapshot is only ever current: each dispatched event clears it,
/// and a store read is kept only if no newer event was dispatched while it
/// ran. A room lives while it has subscriptions.
#[derive(Default)]
struct Room {
    subs: Vec<Arc<Subscription>>,
    /// Seq of the last event dispatched to this room.
    dispatched: u64,
    snapshot: Option<Arc<Snapshot>>,
}

pub struct Hub {
    store: Arc<dyn EventLog>,
    limits: Limits,
    rooms: DashMap<String, Room>,
    next_id: AtomicU64,
    /// Read by `/v1/stats` and `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Cancelled by [`Hub::stop`]: ends the dispatcher and the retention task.
    tasks: CancellationToken,
}

impl Hub {
    /// Starts the hub's dispatcher on `feed` (the receiving end of the channel
    /// the store was opened with) and its retention task.
    pub fn start(
        store: Arc<dyn EventLog>,
        feed: mpsc::Receiver<Arc<Event>>,
        limits: Limits,
    ) -> Arc<Hub> {
        let tasks = CancellationToken::new();
        let hub = Arc::new(Hub {
            store,
            limits,
            rooms: DashMap::new(),
            next_id: AtomicU64::new(1),
            metrics: Arc::new(Metrics::default()),
            tasks: tasks.clone(),
        });
        tokio::spawn(
            tasks
                .clone()
                .run_until_cancelled_owned(dispatch::dispatch(Arc::downgrade(&hub), feed)),
        );
        tokio::spawn(tasks.run_until_cancelled_owned(trim_periodically(Arc::downgrade(&hub))));
        hub
    }

    /// Stops the dispatcher and the retention task. Events committed after
    /// this are stored but no longer fanned out; the server calls it once
    /// every client connection is gone, before closing the store.
    pub fn stop(&self) {
        self.tasks.cancel();
    }

    /// The one publish path: sequence and persist, then (through the feed) fan out.
    pub async fn publish(
        &self,
        account_id: &str,
        event: &str,
        body: Body,
        idempotency: Option<Idempotency>,
    ) -> Result<Appended, HubError> {
        let draft = Draft {
            account_id: account_id.to_owned(),
            event: event.to_owned(),
            id: event::new_id(),
            published_at: event::rfc3339(event::now()),
            body,
            idempotency,
        };
        let started = Instant::now();
        let appended = self
            .store
            .append(draft)
            .await
            .inspect_err(|e| self.note_store_error(e))?;
        if matches!(appended, Appended::New(_)) {
            self.metrics.published(event, started.elapsed());
        }
        Ok(appended)
    }

    pub async fn snapshot(&self, account_id: &str) -> Result<Snapshot, HubError> {
        Ok(self
            .store
            .snapshot(account_id)
            .await
            .inspect_err(|e| self.note_store_error(e))?)
    }

    pub async fn history(
        &self,
        account_id: &str,
        since: u64,
        limit: usize,
    ) -> Result<crate::store::History, HubError> {
        Ok(self
            .store
            .events_since(account_id, since, limit)
            .await
            .inspect_err(|e| self.note_store_error(e))?)
    }

    pub async fn ready(&self) -> Result<(), HubError> {
        Ok(self.store.ping().await?)
    }

    fn note_store_error(&self, e: &StoreError) {
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.store_error();
        }
    }

    /// Subscribes a connection to an account. It first receives the snapshot
    /// (no `since`) or the retained events after `since` (a snapshot with
    /// `reset: true` when they are no longer retained, or when the client's
    /// epoch is not the store's), then live events.
    pub fn subscribe(
        self: &Arc<Self>,
        account_id: &str,
        resume: impl Into<Resume>,
        sink: Arc<dyn Sink>,
    ) -> Arc<Subscription> {
        self.subscribe_with(account_id, resume, Interest::default(), sink)
    }

    /// [`Hub::subscribe`] with a filter and the connection's identity: the
    /// snapshot, the replay and live events all pass the filter.
    pub fn subscribe_with(
        self: &Arc<Self>,
        account_id: &str,
        resume: impl Into<Resume>,
        interest: Interest,
        sink: Arc<dyn Sink>,
    ) -> Arc<Subscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscription::new(
            id,
            account_id.to_owned(),
            sink,
            interest,
            self.limits.queue_size,
        ));
        // Registered before reading the store, so nothing committed after the read is missed.
        self.rooms
            .entry(account_id.to_owned())
            .or_default()
            .subs
            .push(sub.clone());
        tokio::spawn(self.clone().catch_up(sub.clone(), resume.into()));
        sub
    }

    /// Forgets a subscription whose connection has ended.
    pub fn unsubscribe(&self, sub: &Subscription) {
        sub.mark_closed();
        let emptied = match self.rooms.get_mut(&sub.account_id) {
            Some(mut room) => {
                room.subs.retain(|s| s.id != sub.id);
                room.subs.is_empty()
            }
            None => false,
        };
        if emptied {
            self.rooms
                .remove_if(&sub.account_id, |_, room| room.subs.is_empty());
        }
    }

    /// Ends a subscription's connection: the single place where the hub
    /// decides a connection must go.
    pub fn disconnect(&self, sub: &Subscription, reason: DisconnectReason) {
        if sub.mark_closed() {
            let transport = sub.sink.transport();
            if reason == DisconnectReason::Slow {
                self.metrics.slow_disconnect(transport);
            }
            tracing::info!(transport = transport.as_str(), account = %sub.account_id, subscription = sub.id, reason = reason.code(), "disconnecting subscriber");
            sub.sink.close(reason);
        }
        self.unsubscribe(sub);
    }

    /// This node's subscriptions as presence entries of `node`: one
    /// account's, or (`None`) every account's.
    pub fn presence(
        &self,
        account_id: Option<&str>,
        node: &str,
    ) -> Vec<crate::store::PresenceEntry> {
        let of_room = |room: &Room| {
            let subs = room.subs.iter();
            subs.filter_map(|s| s.presence(node)).collect::<Vec<_>>()
        };
        match account_id {
            Some(account) => self
                .rooms
                .get(account)
                .map(|r| of_room(&r))
                .unwrap_or_default(),
            None => self.rooms.iter().flat_map(|r| of_room(&r)).collect(),
        }
    }

    /// Subscriptions on this node (for stats).
    pub fn subscription_count(&self) -> usize {
        self.rooms.iter().map(|e| e.value().subs.len()).sum()
    }

    /// Replays what a subscription missed, then lets it go live.
    /// Only the first round checks the client's epoch: later rounds resume
    /// from what this hub itself sent.
    async fn catch_up(self: Arc<Self>, sub: Arc<Subscription>, resume: Resume) {
        let deadline = Instant::now() + self.limits.catch_up_timeout;
        let Resume {
            mut since,
            mut epoch,
        } = resume;
        loop {
            let step = match since {
                None => self.send_snapshot(&sub, None, deadline).await,
                Some(seq) => self.replay(&sub, seq, epoch.take(), deadline).await,
            };
            let result = step.and_then(|()| sub.finish_catch_up());
            sub.sink.flush();
            match result {
                Ok(Caught::Live) | Ok(Caught::Closed) => return,
                Ok(Caught::Again(seq)) => since = Some(seq),
                Err(reason) => return self.disconnect(&sub, reason),
            }
        }
    }

    async fn send_snapshot(
        &self,
        sub: &Subscription,
        reset: Option<bool>,
        deadline: Instant,
    ) -> Result<(), DisconnectReason> {
        let mut snapshot = self
            .room_snapshot(sub)
            .await
            .map_err(|_| DisconnectReason::Unavailable)?;
        if let Some(filter) = &sub.filter {
            snapshot = Arc::new(filter.snapshot(&snapshot));
        }
        if reset.is_some() {
            Arc::make_mut(&mut snapshot).reset = reset;
        }
        send_patiently(sub, Outbound::Snapshot(&snapshot), deadline).await?;
        sub.advance(snapshot.seq);
        Ok(())
    }

    /// The account's snapshot for a subscription of its room: the room's
    /// cached one, or a store read that is cached for the next subscriber
    /// unless an event newer than it was dispatched meanwhile. A snapshot
    /// older than an event still on its way to the dispatcher is fine: the
    /// subscription is registered, so that event reaches it live.
    async fn room_snapshot(&self, sub: &Subscription) -> Result<Arc<Snapshot>, HubError> {
        let cached = self
            .rooms
            .get(&sub.account_id)
            .and_then(|room| room.snapshot.clone());
        if let Some(snapshot) = cached {
            return Ok(snapshot);
        }
        let snapshot = Arc::new(self.snapshot(&sub.account_id).await?);
        if let Some(mut room) = self.rooms.get_mut(&sub.account_id) {
            // Membership rules out a read that began for an earlier room of
            // the same account, whose dispatched seq this room never saw.
            if snapshot.seq >= room.dispatched && room.subs.iter().any(|s| s.id == sub.id) {
                room.snapshot = Some(snapshot.clone());
            }
        }
        Ok(snapshot)
    }

    /// Sends the retained events after `since`, or a reset snapshot when
    /// they are not all retained or the client's `epoch` (checked against
    /// the first page read) names another sequence than the store's: the
    /// contract's epoch rule, for every transport, lives here.
    async fn replay(
        &self,
        sub: &Subscription,
        mut since: u64,
        mut epoch: Option<String>,
        deadline: Instant,
    ) -> Result<(), DisconnectReason> {
        loop {
            let history = self
                .history(&sub.account_id, since, CATCH_UP_PAGE)
                .await
                .map_err(|_| DisconnectReason::Unavailable)?;
            let same_epoch = epoch.take().is_none_or(|e| e == history.epoch);
            if !history.complete || !same_epoch {
                return self.send_snapshot(sub, Some(true), deadline).await;
            }
            let page_full = history.events.len() == CATCH_UP_PAGE;
            for event in history.events {
                let seq = event.seq;
                let published = Arc::new(Published::new(event, &self.metrics));
                if sub.wants(&published) {
                    send_patiently(sub, Outbound::Event(&published), deadline).await?;
                }
                since = seq;
            }
            sub.advance(since);
            if !page_full {
                return Ok(());
            }
        }
    }
}

/// Sends a catch-up message, waiting for room in the connection's queue
/// until the catch-up deadline: replay is paced by the client, live fan-out is not.
async fn send_patiently(
    sub: &Subscription,
    msg: Outbound<'_>,
    deadline: Instant,
) -> Result<(), DisconnectReason> {
    let mut pause = Duration::from_millis(1);
    loop {
        if sub.is_closed() {
            return Err(DisconnectReason::Gone);
        }
        match sub.deliver(msg) {
            Ok(()) => return Ok(()),
            Err(SinkError::Closed) => return Err(DisconnectReason::Gone),
            Err(SinkError::Full) if Instant::now() >= deadline => {
                return Err(DisconnectReason::Slow);
            }
            Err(SinkError::Full) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

async fn trim_periodically(hub: std::sync::Weak<Hub>) {
    let mut every = tokio::time::interval(TRIM_EVERY);
    loop {
        every.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        match hub.store.trim().await {
            Ok(dropped) if dropped > 0 => tracing::info!(dropped, "trimmed events past retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention trim failed"),
        }
    }
}
