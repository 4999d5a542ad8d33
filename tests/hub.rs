//! The hub's delivery guarantees, checked through a recording `Sink` so no
//! transport is involved: snapshot then live, exact resume, reset snapshots,
//! slow-consumer cut-off, account isolation, and the gap rules (on the
//! in-memory event log).

mod common;

use common::{WAIT, wait_for};
use serde_json::json;
use statushub::{
    config::{Limits, Retention},
    event::Event,
    hub::{DisconnectReason, Hub, Outbound, Sink, SinkError},
    store::{
        Appended, Body, Draft, EventLog, History, MemoryLog, Snapshot, SqliteStore, StoreFuture,
    },
};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Clone, PartialEq)]
enum Got {
    Snapshot { seq: u64, reset: bool },
    Event { seq: u64, account: String },
}

/// A sink with a fixed capacity that nobody drains unless the test says so.
struct Recorder {
    got: Mutex<Vec<Got>>,
    capacity: usize,
    closed: Mutex<Option<DisconnectReason>>,
}

impl Recorder {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Recorder {
            got: Mutex::default(),
            capacity,
            closed: Mutex::default(),
        })
    }
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
    fn event_seqs(&self) -> Vec<u64> {
        self.got()
            .into_iter()
            .filter_map(|g| {
                if let Got::Event { seq, .. } = g {
                    Some(seq)
                } else {
                    None
                }
            })
            .collect()
    }
    fn closed(&self) -> Option<DisconnectReason> {
        *self.closed.lock().unwrap()
    }
}

impl Sink for Recorder {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        let mut got = self.got.lock().unwrap();
        if got.len() >= self.capacity {
            return Err(SinkError::Full);
        }
        got.push(match msg {
            Outbound::Event(p) => Got::Event {
                seq: p.event.seq,
                account: p.event.account_id.clone(),
            },
            Outbound::Snapshot(s) => Got::Snapshot {
                seq: s.seq,
                reset: s.reset == Some(true),
            },
        });
        Ok(())
    }
    fn close(&self, reason: DisconnectReason) {
        *self.closed.lock().unwrap() = Some(reason);
    }
}

fn start_hub(retention: Retention, limits: Limits) -> (Arc<Hub>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let store = Arc::new(SqliteStore::open(dir.path(), retention, tx).unwrap());
    (Hub::start(store, rx, limits), dir)
}

async fn publish(hub: &Hub, account: &str, n: usize) {
    for i in 0..n {
        let data = serde_json::value::to_raw_value(&json!({ "i": i })).unwrap();
        hub.publish(account, "tick", Body::Fixed(data), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn fresh_subscriber_gets_snapshot_then_live_events() {
    let (hub, _dir) = start_hub(Retention::default(), Limits::default());
    publish(&hub, "a", 2).await;
    let sink = Recorder::new(100);
    hub.subscribe("a", None, sink.clone());
    wait_for("snapshot", WAIT, || async { !sink.got().is_empty() }).await;
    publish(&hub, "a", 2).await;
    wait_for("live events", WAIT, || async { sink.got().len() == 3 }).await;
    assert_eq!(
        sink.got()[0],
        Got::Snapshot {
            seq: 2,
            reset: false
        }
    );
    assert_eq!(sink.event_seqs(), [3, 4]);
}

/// Later subscribers of a busy account may be served the room's cached
/// snapshot, but never one older than an event already dispatched.
#[tokio::test]
async fn later_subscribers_never_get_a_stale_snapshot() {
    let (hub, _dir) = start_hub(Retention::default(), Limits::default());
    let first = Recorder::new(100);
    hub.subscribe("a", None, first.clone());
    wait_for("first snapshot", WAIT, || async { !first.got().is_empty() }).await;
    for round in 1..=3u64 {
        publish(&hub, "a", 2).await;
        let seq = 2 * round;
        wait_for("dispatch", WAIT, || async {
            first.event_seqs().last() == Some(&seq)
        })
        .await;
        for _ in 0..3 {
            let later = Recorder::new(100);
            let sub = hub.subscribe("a", None, later.clone());
            wait_for("later snapshot", WAIT, || async { !later.got().is_empty() }).await;
            assert_eq!(later.got()[0], Got::Snapshot { seq, reset: false });
            hub.unsubscribe(&sub);
        }
    }
}

#[tokio::test]
async fn resume_delivers_exactly_the_missed_events_while_publishing_continues() {
    let (hub, _dir) = start_hub(Retention::default(), Limits::default());
    publish(&hub, "a", 50).await;
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move { publish(&hub, "a", 150).await })
    };
    let sink = Recorder::new(1000);
    hub.subscribe("a", Some(20), sink.clone());
    publisher.await.unwrap();
    wait_for("all 180 missed and live events", WAIT, || async {
        sink.event_seqs().len() >= 180
    })
    .await;
    assert_eq!(
        sink.event_seqs(),
        (21..=200).collect::<Vec<_>>(),
        "exactly once, in order"
    );
    assert!(
        sink.got().iter().all(|g| matches!(g, Got::Event { .. })),
        "no snapshot on a retained resume"
    );
}

#[tokio::test]
async fn resume_from_before_retention_gets_a_reset_snapshot() {
    let retention = Retention {
        max_events: 3,
        ..Retention::default()
    };
    let (hub, _dir) = start_hub(retention, Limits::default());
    publish(&hub, "a", 10).await;
    let sink = Recorder::new(100);
    hub.subscribe("a", Some(2), sink.clone());
    wait_for("reset snapshot", WAIT, || async { !sink.got().is_empty() }).await;
    publish(&hub, "a", 1).await;
    wait_for("live event", WAIT, || async { sink.got().len() == 2 }).await;
    assert_eq!(
        sink.got()[0],
        Got::Snapshot {
            seq: 10,
            reset: true
        }
    );
    assert_eq!(sink.event_seqs(), [11]);
}

#[tokio::test]
async fn a_client_ahead_of_the_hub_starts_over() {
    let (hub, _dir) = start_hub(Retention::default(), Limits::default());
    publish(&hub, "a", 3).await;
    let sink = Recorder::new(100);
    hub.subscribe("a", Some(99), sink.clone());
    wait_for("reset snapshot", WAIT, || async { !sink.got().is_empty() }).await;
    assert_eq!(
        sink.got()[0],
        Got::Snapshot {
            seq: 3,
            reset: true
        }
    );
}

#[tokio::test]
async fn slow_subscriber_is_cut_off_while_others_keep_receiving() {
    let limits = Limits {
        queue_size: 16,
        ..Limits::default()
    };
    let (hub, _dir) = start_hub(Retention::default(), limits);
    let slow = Recorder::new(5);
    let fast = Recorder::new(1000);
    hub.subscribe("a", Some(0), slow.clone());
    hub.subscribe("a", Some(0), fast.clone());
    wait_for("both live", WAIT, || async {
        hub.subscription_count() == 2
    })
    .await;
    publish(&hub, "a", 40).await;
    wait_for("fast subscriber got everything", WAIT, || async {
        fast.event_seqs().len() == 40
    })
    .await;
    wait_for("slow subscriber cut off", WAIT, || async {
        slow.closed().is_some()
    })
    .await;
    assert_eq!(slow.closed(), Some(DisconnectReason::Slow));
    assert_eq!(fast.event_seqs(), (1..=40).collect::<Vec<_>>());
    assert_eq!(fast.closed(), None);
    assert_eq!(
        hub.subscription_count(),
        1,
        "the slow subscription is forgotten"
    );
    assert!(
        slow.event_seqs().len() <= 5,
        "nothing beyond its queue was buffered"
    );
}

#[tokio::test]
async fn accounts_never_see_each_other() {
    let (hub, _dir) = start_hub(Retention::default(), Limits::default());
    let a = Recorder::new(100);
    let b = Recorder::new(100);
    hub.subscribe("a", Some(0), a.clone());
    hub.subscribe("b", Some(0), b.clone());
    wait_for("both live", WAIT, || async {
        hub.subscription_count() == 2
    })
    .await;
    publish(&hub, "a", 5).await;
    publish(&hub, "b", 1).await;
    wait_for("b's own event", WAIT, || async { b.event_seqs() == [1] }).await;
    wait_for("a's events", WAIT, || async { a.event_seqs().len() == 5 }).await;
    assert!(
        b.got()
            .iter()
            .all(|g| !matches!(g, Got::Event { account, .. } if account == "a"))
    );
    assert!(
        a.got()
            .iter()
            .all(|g| matches!(g, Got::Event { account, .. } if account == "a"))
    );
}

// The gap rules, on the in-memory event log. The log's feed reaches the hub
// through a relay the test drives by hand, standing in for the link between
// cluster nodes: an event it loses is committed but never dispatched, which
// is what a gap is.

/// The in-memory log, recording where each `events_since` read started and
/// able to hold a read's answer (already read) until released, so a test
/// can commit events the answer does not include.
struct GatedLog {
    inner: MemoryLog,
    reads: Mutex<Vec<u64>>,
    held: AtomicBool,
    gate: Semaphore,
}

impl GatedLog {
    fn reads(&self) -> Vec<u64> {
        self.reads.lock().unwrap().clone()
    }
    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.gate.add_permits(1);
    }
}

impl EventLog for GatedLog {
    fn append(&self, draft: Draft) -> StoreFuture<'_, Appended> {
        self.inner.append(draft)
    }
    fn snapshot<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Snapshot> {
        self.inner.snapshot(account_id)
    }
    fn events_since<'a>(
        &'a self,
        account_id: &'a str,
        since: u64,
        limit: usize,
    ) -> StoreFuture<'a, History> {
        Box::pin(async move {
            let history = self.inner.events_since(account_id, since, limit).await?;
            self.reads.lock().unwrap().push(since);
            if self.held.load(Ordering::SeqCst) {
                self.gate.acquire().await.expect("gate open").forget();
            }
            Ok(history)
        })
    }
    fn trim(&self) -> StoreFuture<'_, u64> {
        self.inner.trim()
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.close()
    }
}

struct Relayed {
    hub: Arc<Hub>,
    log: Arc<GatedLog>,
    from_log: mpsc::Receiver<Arc<Event>>,
    to_hub: mpsc::Sender<Arc<Event>>,
    /// Subscribed to `PROBE`, which no test account uses.
    probe: Arc<Recorder>,
}

const PROBE: &str = "probe";

impl Relayed {
    async fn start(hold_reads: bool) -> Relayed {
        let (log_tx, from_log) = mpsc::channel(1024);
        let (to_hub, hub_rx) = mpsc::channel(1024);
        let log = Arc::new(GatedLog {
            inner: MemoryLog::new(Retention::default(), log_tx),
            reads: Mutex::default(),
            held: AtomicBool::new(hold_reads),
            gate: Semaphore::new(0),
        });
        let hub = Hub::start(log.clone(), hub_rx, Limits::default());
        let probe = Recorder::new(100);
        // No `since`: served from a snapshot, so never held at the gate.
        hub.subscribe(PROBE, None, probe.clone());
        wait_for("probe snapshot", WAIT, || async { !probe.got().is_empty() }).await;
        Relayed {
            hub,
            log,
            from_log,
            to_hub,
            probe,
        }
    }

    /// Publishes one event to `account` and takes it off the log's feed.
    async fn commit(&mut self, account: &str) -> Arc<Event> {
        publish(&self.hub, account, 1).await;
        self.from_log
            .recv()
            .await
            .expect("the log feeds every commit")
    }

    /// Commits an event and relays it to the hub.
    async fn pass(&mut self, account: &str) -> u64 {
        let event = self.commit(account).await;
        let seq = event.seq;
        self.to_hub.send(event).await.expect("hub running");
        seq
    }

    /// Commits an event the relay loses on the way to the hub.
    async fn lose(&mut self, account: &str) -> u64 {
        self.commit(account).await.seq
    }

    /// Returns once the hub has dispatched everything relayed so far: the
    /// dispatcher handles the feed in order, so a probe event behind them
    /// arriving means they were all offered.
    async fn flush(&mut self) {
        let seq = self.pass(PROBE).await;
        let probe = self.probe.clone();
        wait_for("probe event", WAIT, || async {
            probe.event_seqs().contains(&seq)
        })
        .await;
    }
}

/// Live at seq 1, the subscription is offered seq 3: seq 2 was lost on the
/// way, so it goes back to the log from 1 instead of skipping ahead.
#[tokio::test]
async fn a_newer_seq_while_live_is_a_gap_replayed_from_the_log() {
    let mut relay = Relayed::start(false).await;
    assert_eq!(relay.pass("a").await, 1);
    let sink = Recorder::new(100);
    relay.hub.subscribe("a", Some(0), sink.clone());
    // The catch-up delivers seq 1 and goes live in the same step, so once
    // seq 1 is seen the subscription is live (single-threaded runtime).
    wait_for("catch-up", WAIT, || async { sink.event_seqs() == [1] }).await;

    assert_eq!(relay.lose("a").await, 2);
    assert_eq!(relay.pass("a").await, 3);
    wait_for("seq 3", WAIT, || async { sink.event_seqs().contains(&3) }).await;
    assert_eq!(
        sink.event_seqs(),
        [1, 2, 3],
        "the lost seq 2 came from the log"
    );
    assert_eq!(
        relay.log.reads(),
        [0, 1],
        "the gap is read from the last delivered seq"
    );

    assert_eq!(relay.pass("a").await, 4);
    wait_for("seq 4", WAIT, || async { sink.event_seqs().contains(&4) }).await;
    assert_eq!(sink.event_seqs(), [1, 2, 3, 4], "live again, exactly once");
    assert_eq!(sink.closed(), None);
}

/// While a catch-up's read is in flight, seq 3 is lost and seq 4 is parked:
/// the parked event skips past what the read returned (`Caught::Again`), so
/// the catch-up reads again from 2 before going live.
#[tokio::test]
async fn parked_events_past_the_read_send_the_catch_up_round_again() {
    let mut relay = Relayed::start(true).await;
    relay.pass("a").await;
    relay.pass("a").await;
    let sink = Recorder::new(100);
    relay.hub.subscribe("a", Some(0), sink.clone());
    let log = relay.log.clone();
    wait_for("first read, held", WAIT, || async { log.reads() == [0] }).await;

    assert_eq!(relay.lose("a").await, 3);
    assert_eq!(relay.pass("a").await, 4);
    relay.flush().await;
    assert!(sink.event_seqs().is_empty(), "seq 4 is parked, not sent");

    relay.log.release();
    wait_for("seq 4", WAIT, || async { sink.event_seqs().contains(&4) }).await;
    assert_eq!(
        sink.event_seqs(),
        [1, 2, 3, 4],
        "the lost seq 3 came from the log"
    );
    assert_eq!(
        relay.log.reads(),
        [0, 2],
        "the second round starts after what the first delivered"
    );

    assert_eq!(relay.pass("a").await, 5);
    wait_for("seq 5", WAIT, || async { sink.event_seqs().contains(&5) }).await;
    assert_eq!(sink.event_seqs(), [1, 2, 3, 4, 5], "live, exactly once");
    assert_eq!(sink.closed(), None);
}
