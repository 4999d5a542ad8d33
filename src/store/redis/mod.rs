//! The cluster store: every node keeps its events, snapshots, idempotency
//! records and monitors in one Redis (or Redis Cluster), so any node can
//! serve any account.
//!
//! - Layout (`keys`): every key of an account is under the hash tag
//!   `{account}`, so each script touches one slot and the layout runs on
//!   Redis Cluster as is.
//! - Append (`writer`, `scripts/append.lua`): one Lua script per event does
//!   the idempotency check, the entry check-and-set, `HINCRBY` of the
//!   account's seq, `XADD` to the account's stream with the seq as entry id
//!   (trimmed to the retention count), the snapshot entry, the idempotency
//!   record (expiring) and the `PUBLISH` of the committed event, all or
//!   nothing. Waiting appends are pipelined by one writer task, which feeds
//!   committed events in reply (= seq) order. `Body::Entry` closures run in
//!   Rust under optimistic check-and-set, explained in `writer`.
//! - Epoch: the account's meta hash holds a random `epoch` beside its `seq`.
//!   A script that finds no epoch stores a fresh one (as Centrifugo's
//!   `new_epoch_if_empty`); when the seq restarts at 1 the old stream is
//!   dropped. So a Redis that lost an account (restart without persistence,
//!   eviction, `FLUSHALL`) shows a new epoch, and a client resuming with an
//!   old seq is told to start over instead of receiving other events under
//!   numbers it already saw. Snapshot entries are kept: they are state, not
//!   history.
//! - Jobs (`jobs`): sync jobs and their one-running-per-kind guard, decided
//!   by one Lua script per start or compare-and-set update.
//! - Feed (`subscriber`): every node subscribes to every account's channel
//!   and feeds what any node committed, once and in seq order per account,
//!   catching up from the stream on a gap or after a reconnect. The writer
//!   hands its own events to the same sequencer before answering, so an
//!   acknowledged append is already on this node's feed.
//! - Outage (`conn`): every call is bounded by `conn::CALL_TIMEOUT` and fails
//!   with `StoreError::Unavailable`; the connection manager reconnects when
//!   Redis is back, and Lua scripts Redis forgot are loaded again. An append
//!   that times out may still have been applied (the reply was lost): a
//!   retry with the same `Idempotency-Key` answers with its receipt.
//! - History (`history`, `scripts/record_check.lua`): per monitor sorted
//!   sets of checks, hourly buckets and transitions, kept bounded by the
//!   script that records each check.
//! - Leases (`leases`): one key per lease holding its owner, taken with
//!   `SET NX PX`, renewed and released by small compare-and-set scripts, so
//!   only the holder extends or frees it and a dead holder's lease expires.
//! - Rates (`rates`): token buckets shared by every node, one hash each,
//!   taken from by a script on Redis's clock.
//! - Durability: `Ok` means Redis applied the script; whether that survives
//!   a Redis crash depends on its AOF settings, checked at start (`conn`,
//!   docs/CLUSTER.md).

mod codec;
mod conn;
mod history;
mod jobs;
mod keys;
mod leases;
mod monitors;
mod presence;
mod rates;
mod reads;
mod scripts;
mod subscriber;
mod webhooks;
mod writer;

pub use conn::{ConnectError, Durability, RedisSettings};
pub use subscriber::{FanoutReport, FanoutStats};

use super::{
    Appended, Draft, EventLog, Feed, History, LeaseGrant, LeaseStore, MonitorStore, PresenceEntry,
    PresenceStore, RateStore, Snapshot, StoreError, StoreFuture, StoredMonitor,
};
use crate::config::Retention;
use keys::Keys;
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use subscriber::Sequencer;
use tokio::sync::{mpsc, oneshot};
use writer::{Job, MAX_BATCH, Writer};

/// How long an append may wait in the writer's queue and run: the contract
/// wants an answer within 2 s even while Redis is unreachable.
const APPEND_TIMEOUT: Duration = Duration::from_millis(1800);

pub struct RedisStore {
    conn: conn::Conn,
    round_trips: Arc<AtomicU64>,
    fanout: Arc<FanoutStats>,
    keys: Keys,
    retention: Retention,
    jobs: mpsc::Sender<Job>,
    /// True once closed. Appends hold it shared while they run, so `close`
    /// (exclusive) waits for the appends in progress and then refuses the rest.
    closed: Arc<tokio::sync::RwLock<bool>>,
    /// The accounts this process last published presence for, per node.
    presence: presence::Published,
}

impl RedisStore {
    /// Connects (failing when Redis is unreachable now) and starts the
    /// writer task, which sends every committed event on `feed`.
    pub async fn open(
        settings: &RedisSettings,
        retention: Retention,
        feed: Feed,
    ) -> Result<Self, ConnectError> {
        let keys = Keys::new(&settings.prefix).map_err(ConnectError::BadPrefix)?;
        let conn = conn::connect(&settings.url).await?;
        let (store, subscribed) = Self::start(&settings.url, conn, keys, retention, feed);
        // Events other nodes commit from now on reach this node's feed.
        if tokio::time::timeout(3 * conn::CONNECT_TIMEOUT, subscribed)
            .await
            .is_err()
        {
            tracing::warn!("fan-out: not subscribed to Redis yet; still trying");
        }
        Ok(store)
    }

    /// Like [`RedisStore::open`], but connects on the first call instead of
    /// now (for callers that cannot wait, such as synchronous constructors).
    /// Must be called inside a Tokio runtime.
    pub fn open_lazy(
        settings: &RedisSettings,
        retention: Retention,
        feed: Feed,
    ) -> Result<Self, ConnectError> {
        let keys = Keys::new(&settings.prefix).map_err(ConnectError::BadPrefix)?;
        let conn = conn::connect_lazy(&settings.url)?;
        Ok(Self::start(&settings.url, conn, keys, retention, feed).0)
    }

    /// Starts the writer and the fan-out subscriber; the receiver fires once
    /// the subscriber first listens.
    fn start(
        url: &str,
        conn: conn::Conn,
        keys: Keys,
        retention: Retention,
        feed: Feed,
    ) -> (Self, oneshot::Receiver<()>) {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        let round_trips = Arc::new(AtomicU64::new(0));
        let sequencer = Sequencer::new(conn.clone(), keys.clone(), feed);
        let fanout = sequencer.stats.clone();
        let (subscribed, listening) = oneshot::channel();
        tokio::spawn(subscriber::run(
            url.to_owned(),
            keys.clone(),
            sequencer.clone(),
            subscribed,
        ));
        let writer = Writer {
            round_trips: round_trips.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            retention,
            sequencer,
            entries: HashMap::new(),
        };
        tokio::spawn(writer.run(rx));
        let store = RedisStore {
            conn,
            round_trips,
            fanout,
            keys,
            retention,
            jobs,
            closed: Arc::new(tokio::sync::RwLock::new(false)),
            presence: presence::Published::default(),
        };
        (store, listening)
    }

    /// Fan-out counters (notifications received, catch-ups from the stream)
    /// and the test hook that drops notifications.
    pub fn fanout(&self) -> &FanoutStats {
        &self.fanout
    }

    /// A handle on the fan-out counters, for `/v1/stats` and `/metrics`.
    pub fn fanout_stats(&self) -> Arc<FanoutStats> {
        self.fanout.clone()
    }

    /// Fails once the store is closed.
    fn open_now(&self) -> Result<(), StoreError> {
        match self.closed.try_read() {
            Ok(closed) if !*closed => Ok(()),
            // Closed, or a close is waiting for appends in progress.
            _ => Err(StoreError::Unavailable("store closed".into())),
        }
    }

    /// Pipelines the append path has sent so far: appends that arrive
    /// together share one (for metrics, and to show they are pipelined).
    pub fn append_round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// What Redis's persistence settings promise for acknowledged events.
    pub async fn durability(&self) -> Durability {
        conn::durability(&mut self.conn.clone()).await
    }

    /// Logs, once, what Redis's persistence settings cost on a Redis crash.
    pub async fn check_durability(&self) -> Durability {
        let durability = self.durability().await;
        conn::report_durability(&durability);
        durability
    }

    async fn append_bounded(&self, draft: Draft) -> Result<Appended, StoreError> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Unavailable("store closed".into()));
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            draft,
            reply,
            attempts: 0,
        };
        let run = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
            answer
                .await
                .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
        };
        tokio::time::timeout(APPEND_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "redis: the append did not complete within {} ms",
                    APPEND_TIMEOUT.as_millis()
                )))
            })
    }
}

impl EventLog for RedisStore {
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended> {
        Box::pin(self.append_bounded(draft))
    }

    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot> {
        Box::pin(async move {
            self.open_now()?;
            reads::snapshot(self.conn.clone(), &self.keys, account_id).await
        })
    }

    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History> {
        Box::pin(async move {
            self.open_now()?;
            reads::events_since(self.conn.clone(), &self.keys, account_id, since, limit).await
        })
    }

    fn trim(&self) -> StoreFuture<'_, u64> {
        // Idempotency records expire by themselves (EXPIRE).
        Box::pin(reads::trim(
            self.conn.clone(),
            &self.keys,
            self.retention.max_age,
        ))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            self.open_now()?;
            conn::bounded(redis::cmd("PING").query_async::<()>(&mut conn)).await
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        // Every acknowledged append is already in Redis (and fed) when it
        // returns: closing only waits for those in progress, then refuses.
        Box::pin(async move {
            *self.closed.write().await = true;
            Ok(())
        })
    }
}

impl MonitorStore for RedisStore {
    fn put_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        spec: Value,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            monitors::put(self.conn.clone(), &self.keys, account_id, id, &spec).await
        })
    }

    fn get_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMonitor>> {
        Box::pin(monitors::get(self.conn.clone(), &self.keys, account_id, id))
    }

    fn get_monitors<'a>(
        &'a self,
        account_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredMonitor>> {
        Box::pin(monitors::list(self.conn.clone(), &self.keys, account_id))
    }

    fn save_monitor_state<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        state: Value,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            monitors::save_state(self.conn.clone(), &self.keys, account_id, id, &state).await
        })
    }

    fn delete_monitor<'a>(&'a self, account_id: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(monitors::delete(
            self.conn.clone(),
            &self.keys,
            account_id,
            id,
        ))
    }
}

impl LeaseStore for RedisStore {
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseGrant> {
        Box::pin(leases::acquire(
            self.conn.clone(),
            self.keys.lease(name),
            owner,
            ttl,
        ))
    }

    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(leases::renew(
            self.conn.clone(),
            self.keys.lease(name),
            owner,
            ttl,
        ))
    }

    fn release_lease<'a>(&'a self, name: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(leases::release(
            self.conn.clone(),
            self.keys.lease(name),
            owner,
        ))
    }

    fn lease_holder<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        let mut conn = self.conn.clone();
        let key = self.keys.lease(name);
        Box::pin(
            async move { conn::bounded(redis::cmd("GET").arg(key).query_async(&mut conn)).await },
        )
    }
}

impl RateStore for RedisStore {
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        rate: f64,
        burst: f64,
    ) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(rates::take(
            self.conn.clone(),
            self.keys.rate(name),
            rate,
            burst,
        ))
    }
}

impl PresenceStore for RedisStore {
    fn publish<'a>(
        &'a self,
        node: &'a str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        let conn = self.conn.clone();
        Box::pin(presence::publish(
            conn,
            &self.keys,
            &self.presence,
            node,
            entries,
            ttl,
        ))
    }

    fn list<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Vec<PresenceEntry>> {
        Box::pin(presence::list(self.conn.clone(), &self.keys, account_id))
    }

    fn withdraw<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(presence::withdraw(
            self.conn.clone(),
            &self.keys,
            &self.presence,
            node,
        ))
    }
}
