//! Cross-node fan-out: the node's feed in Redis mode.
//!
//! Every append script `PUBLISH`es `"<seq> <epoch> <body>"` on its account's
//! channel. One task per node `PSUBSCRIBE`s to every account's channel on a
//! dedicated pub/sub connection and hands each notification to the
//! [`Sequencer`], the only thing that sends on the hub's feed. The writer
//! hands its own committed events to the same sequencer before it answers
//! the append, so a 201 still means "stored and on this node's feed"
//! (clients of this node never wait for the pub/sub round trip to see what
//! was just published through it); whichever copy arrives second is a
//! duplicate and is dropped.
//!
//! Per account the sequencer keeps the epoch and the last seq fed:
//! - the next seq is fed; the same or an older seq is dropped (duplicate);
//! - a gap (pub/sub is at-most-once: a slow subscriber, a reconnect) is
//!   filled by paging the account's stream (`events_since(last)`) and
//!   feeding those events in order first, so the feed stays gap-free;
//! - a new epoch (Redis lost the account) is fed as is and tracking starts
//!   over; the hub's reset rules take it from there;
//! - after the pub/sub connection is re-established every tracked account
//!   is caught up from its stream, since anything published while it was
//!   down was lost.
//!
//! An account not tracked yet starts at the first event offered. While
//! this node's writer has appends in flight for such an account, pub/sub
//! notifications for it are held, and fed in seq order together with the
//! writer's events when it offers them (or when its appends are answered
//! otherwise): Redis may publish a later event of the writer's own batch
//! before the writer has offered the earlier ones, and starting there would
//! drop them as duplicates. A notification that arrives only after the
//! account started at a later seq (another node's event, delayed on a Redis
//! Cluster's bus) is not fed; the hub's subscriptions fill such a gap from
//! the store, since they compare seqs with what each client has seen.
//!
//! A notification lost with no later one for its account stays unfed until
//! the account's next event or the next reconnect; clients still get it by
//! resuming (`events?since`). Memory is bounded: accounts not seen for
//! [`FORGET_AFTER`] are forgotten, and the map is capped at [`MAX_TRACKED`].

use super::{codec::Notification, conn, keys::Keys, reads};
use crate::{
    event::Event,
    metrics::{Exposition, Families},
    store::Feed,
};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::Mutex;

/// Accounts not seen for this long are forgotten (their next event is
/// fed without a gap check).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Accounts tracked at most; past it the oldest half is forgotten.
pub const MAX_TRACKED: usize = 100_000;
/// Events read per page while catching up.
const CATCH_UP_PAGE: usize = 500;
/// Pub/sub reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Counters for /v1/stats and /metrics.
#[derive(Default)]
pub struct FanoutStats {
    /// Notifications received from pub/sub.
    pub notifications: AtomicU64,
    /// Gaps filled by reading the stream.
    pub catch_ups: AtomicU64,
    /// Test hook: notifications to drop on receipt.
    drop_next: AtomicU64,
}

/// The fan-out figures read now (`fanout` in `/v1/stats`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FanoutReport {
    /// Notifications received from Redis pub/sub.
    pub notifications: u64,
    /// Gaps filled by reading an account's stream.
    pub catch_ups: u64,
}

impl Families for FanoutReport {
    fn families(&self, out: &mut Exposition) {
        out.family(
            "statushub_fanout_notifications_total",
            "counter",
            "Event notifications received from other nodes (and this one) over Redis pub/sub.",
            [(String::new(), self.notifications.to_string())],
        );
        out.family(
            "statushub_fanout_catch_ups_total",
            "counter",
            "Gaps in the pub/sub notifications filled by reading the account's stream.",
            [(String::new(), self.catch_ups.to_string())],
        );
    }
}

impl FanoutStats {
    pub fn report(&self) -> FanoutReport {
        FanoutReport {
            notifications: self.notifications.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
        }
    }

    /// Test support: drops the next `n` notifications this node receives,
    /// as a lossy pub/sub would.
    pub fn drop_next(&self, n: u64) {
        self.drop_next.fetch_add(n, Ordering::SeqCst);
    }

    fn take_drop(&self) -> bool {
        self.drop_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

struct Track {
    epoch: String,
    last: u64,
    seen: Instant,
}

/// What the sequencer knows, under one lock.
#[derive(Default)]
struct State {
    tracks: HashMap<String, Track>,
    /// Appends this node's writer has in flight, per account.
    pending: HashMap<String, usize>,
    /// Notifications of untracked accounts held while their appends are in
    /// flight: `(epoch, event)`.
    held: HashMap<String, Vec<(String, Event)>>,
}

/// Where an offered event comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This node's writer, in commit order.
    Writer,
    /// A pub/sub notification (any node, at most once).
    PubSub,
}

/// Feeds each account's events once, in seq order, from any source.
#[derive(Clone)]
pub struct Sequencer {
    inner: Arc<Mutex<State>>,
    conn: conn::Conn,
    keys: Keys,
    feed: Feed,
    pub stats: Arc<FanoutStats>,
}

impl Sequencer {
    pub fn new(conn: conn::Conn, keys: Keys, feed: Feed) -> Self {
        Sequencer {
            inner: Arc::new(Mutex::new(State::default())),
            conn,
            keys,
            feed,
            stats: Arc::new(FanoutStats::default()),
        }
    }

    /// Marks appends for `accounts` as in flight (before they are sent).
    pub async fn expect<'a>(&self, accounts: impl IntoIterator<Item = &'a str>) {
        let mut state = self.inner.lock().await;
        for account in accounts {
            *state.pending.entry(account.to_owned()).or_default() += 1;
        }
    }

    /// Clears the marks [`Sequencer::expect`] set (once the appends are
    /// answered, whatever the answer), feeding what was held for accounts
    /// with nothing in flight any more.
    pub async fn settled<'a>(&self, accounts: impl IntoIterator<Item = &'a str>) {
        let mut state = self.inner.lock().await;
        for account in accounts {
            let Some(n) = state.pending.get_mut(account) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                state.pending.remove(account);
                for (epoch, event) in state.held.remove(account).unwrap_or_default() {
                    self.feed_one(&mut state, &epoch, event).await;
                }
            }
        }
    }

    /// Feeds `event` (of `epoch`) unless it was fed already, first feeding
    /// from the stream whatever came between.
    pub async fn offer(&self, source: Source, epoch: &str, event: Event) {
        let mut state = self.inner.lock().await;
        let account = &event.account_id;
        let untracked = !state.tracks.contains_key(account);
        if untracked && state.pending.contains_key(account) {
            let mut held = state.held.remove(account).unwrap_or_default();
            held.push((epoch.to_owned(), event));
            if source == Source::PubSub {
                let account = held[0].1.account_id.clone();
                state.held.insert(account, held);
                return;
            }
            // The writer's event: everything held so far goes first, in seq order.
            held.sort_by_key(|(_, e)| e.seq);
            for (epoch, event) in held {
                self.feed_one(&mut state, &epoch, event).await;
            }
            return;
        }
        self.feed_one(&mut state, epoch, event).await;
    }

    /// The gap and duplicate rules for one event, under the lock.
    async fn feed_one(&self, state: &mut State, epoch: &str, event: Event) {
        let tracks = &mut state.tracks;
        let now = Instant::now();
        if tracks.len() > MAX_TRACKED {
            forget_oldest(tracks);
        }
        let (last, same_epoch) = match tracks.get(&event.account_id) {
            Some(t) if now.duration_since(t.seen) < FORGET_AFTER => (t.last, t.epoch == epoch),
            _ => (event.seq.saturating_sub(1), false),
        };
        let account = event.account_id.clone();
        let seq = event.seq;
        if same_epoch && seq <= last {
            if let Some(t) = tracks.get_mut(&account) {
                t.seen = now;
            }
            return;
        }
        let mut fed = last;
        if same_epoch && seq > last + 1 {
            fed = self.catch_up(&account, epoch, last, seq).await;
        }
        if seq > fed || !same_epoch {
            let _ = self.feed.send(Arc::new(event)).await;
            fed = seq;
        }
        tracks.insert(
            account,
            Track {
                epoch: epoch.to_owned(),
                last: fed,
                seen: now,
            },
        );
    }

    /// Feeds the retained events after `last` and before `until`; returns
    /// the last seq fed (or `last` when the stream could not be read).
    async fn catch_up(&self, account: &str, epoch: &str, last: u64, until: u64) -> u64 {
        self.stats.catch_ups.fetch_add(1, Ordering::Relaxed);
        let mut fed = last;
        while fed + 1 < until {
            let page =
                reads::events_since(self.conn.clone(), &self.keys, account, fed, CATCH_UP_PAGE)
                    .await;
            let history = match page {
                Ok(history) if history.epoch == epoch => history,
                Ok(_) => return fed,
                Err(e) => {
                    tracing::warn!(account, error = %e, "fan-out catch-up could not read the stream");
                    return fed;
                }
            };
            let before = fed;
            for event in history.events {
                if event.seq >= until {
                    return fed;
                }
                fed = event.seq;
                let _ = self.feed.send(Arc::new(event)).await;
            }
            if fed == before {
                return fed;
            }
        }
        fed
    }

    /// Catches every tracked account up to its stream's head (after a
    /// pub/sub reconnect).
    async fn catch_up_all(&self) {
        let accounts: Vec<(String, String, u64)> = {
            let state = self.inner.lock().await;
            state
                .tracks
                .iter()
                .map(|(a, t)| (a.clone(), t.epoch.clone(), t.last))
                .collect()
        };
        for (account, epoch, _) in accounts {
            let mut state = self.inner.lock().await;
            let Some(last) = state.tracks.get(&account).map(|t| t.last) else {
                continue;
            };
            let fed = self.catch_up(&account, &epoch, last, u64::MAX).await;
            if let Some(t) = state.tracks.get_mut(&account) {
                t.last = t.last.max(fed);
            }
        }
    }
}

fn forget_oldest(tracks: &mut HashMap<String, Track>) {
    let mut seen: Vec<Instant> = tracks.values().map(|t| t.seen).collect();
    seen.sort_unstable();
    if let Some(cut) = seen.get(seen.len() / 2).copied() {
        tracks.retain(|_, t| t.seen > cut);
    }
}

/// Receives every account's notifications until the feed closes,
/// reconnecting with backoff.
pub async fn run(
    url: String,
    keys: Keys,
    sequencer: Sequencer,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let pattern = keys.pattern(":feed");
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    // On a Redis Cluster a classic PUBLISH reaches the subscribers of every
    // node, so one node is enough; a failed one is replaced by the next seed.
    let seeds = conn::seeds(&url);
    let mut attempt = 0usize;
    loop {
        let seed = seeds
            .get(attempt % seeds.len().max(1))
            .cloned()
            .unwrap_or_default();
        attempt += 1;
        let session = async {
            let client = conn::client(&seed).map_err(|e| e.to_string())?;
            let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            pubsub
                .psubscribe(&pattern)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = sequencer.feed.closed() => return,
            session = session => session,
        };
        let pubsub = match pubsub {
            Ok(pubsub) => pubsub,
            Err(e) => {
                tracing::warn!(error = %e, "fan-out: cannot subscribe to Redis; retrying");
                tokio::select! {
                    _ = sequencer.feed.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        if let Some(tx) = subscribed.take() {
            let _ = tx.send(());
        }
        if !first {
            tracing::info!("fan-out: resubscribed to Redis; catching up from the streams");
            sequencer.catch_up_all().await;
        }
        first = false;
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                _ = sequencer.feed.closed() => return,
                message = messages.next() => message,
            };
            let Some(message) = message else { break };
            sequencer
                .stats
                .notifications
                .fetch_add(1, Ordering::Relaxed);
            if sequencer.stats.take_drop() {
                continue;
            }
            let channel = message.get_channel_name();
            let Some(account) = keys.account_of(channel, ":feed") else {
                continue;
            };
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            match Notification::decode(account, &payload) {
                Some(note) => {
                    sequencer
                        .offer(Source::PubSub, &note.epoch, note.event)
                        .await
                }
                None => tracing::warn!(account, "fan-out: undecodable notification dropped"),
            }
        }
        tracing::warn!("fan-out: Redis pub/sub connection lost; reconnecting");
    }
}
