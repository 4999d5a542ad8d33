//! One conformance suite every store implementation must pass, written once
//! and instantiated per implementation by [`conformance!`]: one line names
//! the implementation, the roles it serves and how to open it on a fresh
//! [`Place`] with a feed sender and retention settings. Opening twice on the
//! same place is a reopen, so durability is part of the contract too.

use serde_json::{Value, json};
use statushub::{
    config::Retention,
    event::Event,
    store::{
        Appended, Body, Draft, EntryChange, EventLog, Feed, Idempotency, MemoryLog, MonitorStore,
        Section, SqliteStore, StoreError, StoredMonitor,
    },
};
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;

mod redis_support;

use redis_support::Place;

/// Instantiates the suite: `conformance!(name, [roles], constructor)`.
///
/// Roles: `event_log` (the [`EventLog`] checks), `monitors` (the
/// [`MonitorStore`] checks, including a reopen; the store must also be an
/// event log) and `durable` (the event log survives a reopen). The
/// constructor is `|place: &Place, feed: Feed, retention: Retention| Arc<T>`.
macro_rules! conformance {
    ($name:ident, [$($role:ident),+], $open:expr) => {
        mod $name {
            use super::*;
            $( conformance!(@$role $open); )+
        }
    };
    (@event_log $open:expr) => {
        #[tokio::test]
        async fn sequences_are_per_account_and_gapless() {
            let place = Place::new();
            let (store, feed) = open(&constructor($open), &place, Retention::default());
            super::sequences_are_per_account_and_gapless(store, feed).await;
        }
        conformance!(@case $open, idempotency_replays_and_conflicts, Retention::default());
        conformance!(@case $open, derived_entries_see_their_previous_value, Retention::default());
        conformance!(@case $open, history_pages_and_reports_completeness, Retention::default());
        conformance!(@case $open, retention_by_count, keep_five());
        conformance!(@case $open, retention_by_count_under_concurrency, keep_five());
        conformance!(@case $open, entry_bodies_set_and_remove_entries, Retention::default());
        conformance!(@case $open, trim_drops_events_past_the_age_limit, no_age());
        #[tokio::test]
        async fn close_answers_what_was_submitted_then_refuses_everything() {
            let place = Place::new();
            let (store, feed) = open(&constructor($open), &place, Retention::default());
            super::close_answers_what_was_submitted_then_refuses_everything(store, feed).await;
        }
    };
    (@case $open:expr, $test:ident, $retention:expr) => {
        #[tokio::test]
        async fn $test() {
            let place = Place::new();
            let (store, _feed) = open(&constructor($open), &place, $retention);
            super::$test(store).await;
        }
    };
    (@monitors $open:expr) => {
        #[tokio::test]
        async fn monitors_are_put_read_saved_and_deleted() {
            let place = Place::new();
            let (store, _feed) = open(&constructor($open), &place, Retention::default());
            super::monitors_are_put_read_saved_and_deleted(store.clone(), store).await;
        }
        #[tokio::test]
        async fn monitors_survive_a_reopen() {
            let place = Place::new();
            let ctor = constructor($open);
            super::monitors_survive_a_reopen(|| {
                let (store, feed) = open(&ctor, &place, Retention::default());
                (store as Arc<dyn MonitorStore>, feed)
            })
            .await;
        }
    };
    (@durable $open:expr) => {
        #[tokio::test]
        async fn keeps_everything_across_a_reopen() {
            let place = Place::new();
            let ctor = constructor($open);
            super::keeps_everything_across_a_reopen(|| {
                let (store, feed) = open(&ctor, &place, Retention::default());
                (store as Arc<dyn EventLog>, feed)
            })
            .await;
        }
        #[tokio::test]
        async fn a_fresh_place_is_a_new_epoch() {
            let (one, two) = (Place::new(), Place::new());
            let ctor = constructor($open);
            let (a, fa) = open(&ctor, &one, Retention::default());
            let (b, fb) = open(&ctor, &two, Retention::default());
            super::a_fresh_place_is_a_new_epoch((a, fa), (b, fb)).await;
        }
    };
}

conformance!(
    sqlite,
    [event_log, monitors, durable],
    |place, feed, retention| {
        Arc::new(SqliteStore::open(place.dir(), retention, feed).expect("open sqlite"))
    }
);
conformance!(memory, [event_log], |_place, feed, retention| Arc::new(
    MemoryLog::new(retention, feed)
));
conformance!(
    redis,
    [event_log, monitors, durable],
    |place, feed, retention| Arc::new(place.redis().store(feed, retention))
);
conformance!(
    redis_cluster,
    [event_log, monitors, durable],
    |place, feed, retention| Arc::new(place.redis_cluster().store(feed, retention))
);

type FeedRx = mpsc::Receiver<Arc<Event>>;

/// Pins a constructor's argument types, so the closures given to
/// [`conformance!`] need no annotations.
fn constructor<T, F: Fn(&Place, Feed, Retention) -> Arc<T>>(f: F) -> F {
    f
}

/// Opens a store on `place`, with a feed large enough that no test blocks on it.
fn open<T>(
    constructor: &impl Fn(&Place, Feed, Retention) -> Arc<T>,
    place: &Place,
    retention: Retention,
) -> (Arc<T>, FeedRx) {
    let (tx, rx) = mpsc::channel(100_000);
    (constructor(place, tx, retention), rx)
}

/// The retention both retention cases run with.
fn keep_five() -> Retention {
    Retention {
        max_events: 5,
        ..Retention::default()
    }
}

/// Every event is past the age limit as soon as time moves.
fn no_age() -> Retention {
    Retention {
        max_age: Duration::ZERO,
        ..Retention::default()
    }
}

fn draft(account: &str, event: &str, data: Value) -> Draft {
    Draft {
        account_id: account.into(),
        event: event.into(),
        id: statushub::event::new_id(),
        published_at: "2026-01-01T00:00:00Z".into(),
        body: Body::Fixed(serde_json::value::to_raw_value(&data).unwrap()),
        idempotency: None,
    }
}

/// A derived draft that counts how many times its entry was written.
fn counting(account: &str, key: &str) -> Draft {
    let derive = Arc::new(|previous: Option<&Value>| {
        let n = previous.and_then(|p| p["n"].as_u64()).unwrap_or(0);
        EntryChange::kept(json!({ "n": n + 1 }))
    });
    Draft {
        body: Body::Entry {
            section: Section::Phones,
            key: key.into(),
            derive,
        },
        ..draft(account, "phone_status_changed", Value::Null)
    }
}

async fn seq_of(store: &dyn EventLog, d: Draft) -> u64 {
    match store.append(d).await.expect("append") {
        Appended::New(r) => r.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

async fn sequences_are_per_account_and_gapless(store: Arc<dyn EventLog>, mut feed: FeedRx) {
    let mut tasks = Vec::new();
    for account in ["a", "b"] {
        for i in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                seq_of(&*store, draft(account, "x", json!({ "i": i }))).await
            }));
        }
    }
    let mut seqs: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    seqs.sort();
    let expected: Vec<u64> = (1..=50).flat_map(|s| [s, s]).collect();
    assert_eq!(seqs, expected, "each account gets 1..=50 exactly once");

    // The feed carries every committed event, per account in seq order.
    let mut last = std::collections::HashMap::new();
    for _ in 0..100 {
        let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("feed")
            .expect("open");
        let prev = last
            .insert(event.account_id.clone(), event.seq)
            .unwrap_or(0);
        assert_eq!(event.seq, prev + 1, "feed order for {}", event.account_id);
    }
}

async fn idempotency_replays_and_conflicts(store: Arc<dyn EventLog>) {
    let with_key = |fingerprint: &str| Draft {
        idempotency: Some(Idempotency {
            key: "k1".into(),
            fingerprint: fingerprint.into(),
        }),
        ..draft("acc", "x", json!({}))
    };
    let first = store.append(with_key("f1")).await.unwrap();
    let Appended::New(receipt) = first else {
        panic!("first append must be new")
    };
    let again = store.append(with_key("f1")).await.unwrap();
    assert_eq!(again, Appended::Replayed(receipt.clone()));
    assert!(matches!(
        store.append(with_key("f2")).await,
        Err(StoreError::IdempotencyConflict)
    ));
    let history = store.events_since("acc", 0, 100).await.unwrap();
    assert_eq!(
        history.events.len(),
        1,
        "replays and conflicts store nothing"
    );
    assert_eq!(history.head, 1);
}

async fn derived_entries_see_their_previous_value(store: Arc<dyn EventLog>) {
    for _ in 0..3 {
        seq_of(&*store, counting("acc", "p1")).await;
    }
    seq_of(&*store, counting("acc", "p2")).await;
    seq_of(&*store, draft("acc", "other", json!({ "free": true }))).await;
    let snapshot = store.snapshot("acc").await.unwrap();
    assert_eq!(snapshot.seq, 5);
    assert_eq!(snapshot.phones["p1"], json!({ "n": 3 }));
    assert_eq!(snapshot.phones["p2"], json!({ "n": 1 }));
    assert!(snapshot.credentials.is_empty() && snapshot.monitors.is_empty());
    let history = store.events_since("acc", 2, 100).await.unwrap();
    let data: Vec<String> = history
        .events
        .iter()
        .map(|e| e.data.get().to_owned())
        .collect();
    assert_eq!(data, [r#"{"n":3}"#, r#"{"n":1}"#, r#"{"free":true}"#]);
    let empty = store.snapshot("nobody").await.unwrap();
    assert_eq!((empty.seq, empty.phones.len()), (0, 0));
}

async fn history_pages_and_reports_completeness(store: Arc<dyn EventLog>) {
    for i in 0..10 {
        seq_of(&*store, draft("acc", "x", json!({ "i": i }))).await;
    }
    let page = store.events_since("acc", 3, 4).await.unwrap();
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7]);
    assert!(page.complete);
    assert_eq!(page.head, 10);
    let caught_up = store.events_since("acc", 10, 4).await.unwrap();
    assert!(caught_up.complete && caught_up.events.is_empty());
    let ahead = store.events_since("acc", 11, 4).await.unwrap();
    assert!(
        !ahead.complete,
        "a client ahead of the store must start over"
    );
}

/// Retention keeps the newest `max_events`; older resumes are incomplete.
async fn retention_by_count(store: Arc<dyn EventLog>) {
    for i in 0..8 {
        seq_of(&*store, draft("acc", "x", json!({ "i": i }))).await;
    }
    let from_start = store.events_since("acc", 0, 100).await.unwrap();
    let seqs: Vec<u64> = from_start.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7, 8]);
    assert!(!from_start.complete, "events 1..3 are gone");
    assert!(store.events_since("acc", 3, 100).await.unwrap().complete);
    assert_eq!(
        store.trim().await.unwrap(),
        0,
        "nothing is past the age limit"
    );
}

/// Concurrent appends share group-commit batches: heads and the retention
/// cut must still come out as if each append had committed alone.
async fn retention_by_count_under_concurrency(store: Arc<dyn EventLog>) {
    let appends = (0..40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { seq_of(&*store, draft("acc", "x", json!({ "i": i }))).await })
    });
    let mut seqs: Vec<u64> = futures::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=40).collect::<Vec<_>>(),
        "gapless under concurrency"
    );
    let kept = store.events_since("acc", 0, 100).await.unwrap();
    assert_eq!(kept.head, 40);
    let kept: Vec<u64> = kept.events.iter().map(|e| e.seq).collect();
    assert_eq!(
        kept,
        [36, 37, 38, 39, 40],
        "the newest five, whatever the batching"
    );
    assert_eq!(seq_of(&*store, draft("acc", "x", json!({}))).await, 41);
}

/// An entry body whose event data embeds the previous entry, leaving `entry`.
fn entry_draft(account: &str, key: &str, entry: Option<Value>) -> Draft {
    let derive = Arc::new(move |previous: Option<&Value>| EntryChange {
        data: json!({ "previous": previous, "next": entry }),
        entry: entry.clone(),
    });
    Draft {
        body: Body::Entry {
            section: Section::Monitors,
            key: key.into(),
            derive,
        },
        ..draft(account, "health_changed", Value::Null)
    }
}

async fn entry_bodies_set_and_remove_entries(store: Arc<dyn EventLog>) {
    seq_of(
        &*store,
        entry_draft("acc", "m1", Some(json!({ "health": "healthy" }))),
    )
    .await;
    seq_of(
        &*store,
        entry_draft("acc", "m2", Some(json!({ "health": "unknown" }))),
    )
    .await;
    seq_of(
        &*store,
        entry_draft("acc", "m1", Some(json!({ "health": "unhealthy" }))),
    )
    .await;
    let snapshot = store.snapshot("acc").await.unwrap();
    assert_eq!(
        snapshot.monitors["m1"],
        json!({ "health": "unhealthy" }),
        "the entry, not the data"
    );
    seq_of(&*store, entry_draft("acc", "m1", None)).await;
    let snapshot = store.snapshot("acc").await.unwrap();
    assert_eq!(snapshot.seq, 4);
    assert!(
        !snapshot.monitors.contains_key("m1"),
        "a None entry removes it"
    );
    assert_eq!(snapshot.monitors["m2"], json!({ "health": "unknown" }));
    let data: Vec<Value> = store
        .events_since("acc", 2, 10)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| serde_json::from_str(e.data.get()).unwrap())
        .collect();
    assert_eq!(
        data,
        [
            json!({ "previous": { "health": "healthy" }, "next": { "health": "unhealthy" } }),
            json!({ "previous": { "health": "unhealthy" }, "next": null }),
        ]
    );
    // Removing what is not there still records the event.
    seq_of(&*store, entry_draft("acc", "never", None)).await;
    assert_eq!(store.snapshot("acc").await.unwrap().monitors.len(), 1);
}

async fn monitors_are_put_read_saved_and_deleted(
    store: Arc<dyn MonitorStore>,
    log: Arc<dyn EventLog>,
) {
    let spec = json!({ "url": "http://127.0.0.1:1/", "intervalMs": 1000 });
    assert!(
        store.put_monitor("acc", "b", spec.clone()).await.unwrap(),
        "created"
    );
    assert!(store.put_monitor("acc", "a", spec.clone()).await.unwrap());
    assert!(store.put_monitor("other", "a", spec.clone()).await.unwrap());
    assert!(
        store
            .save_monitor_state("acc", "b", json!({ "n": 1 }))
            .await
            .unwrap()
    );
    let respec = json!({ "url": "http://127.0.0.1:2/", "intervalMs": 2000 });
    assert!(
        !store.put_monitor("acc", "b", respec.clone()).await.unwrap(),
        "replaced"
    );
    assert_eq!(
        store.get_monitor("acc", "b").await.unwrap(),
        Some(StoredMonitor {
            account_id: "acc".into(),
            id: "b".into(),
            spec: respec,
            state: Some(json!({ "n": 1 })),
        }),
        "a put keeps the saved state"
    );
    assert_eq!(
        store.get_monitor("acc", "a").await.unwrap().unwrap().state,
        None
    );
    assert_eq!(store.get_monitor("acc", "zzz").await.unwrap(), None);
    let ids = |monitors: Vec<StoredMonitor>| -> Vec<(String, String)> {
        monitors.into_iter().map(|m| (m.account_id, m.id)).collect()
    };
    let own = ids(store.get_monitors(Some("acc")).await.unwrap());
    assert_eq!(
        own,
        [("acc".into(), "a".into()), ("acc".into(), "b".into())]
    );
    assert_eq!(ids(store.get_monitors(None).await.unwrap()).len(), 3);

    assert!(store.delete_monitor("acc", "b").await.unwrap());
    assert!(
        !store.delete_monitor("acc", "b").await.unwrap(),
        "already gone"
    );
    assert!(
        !store
            .save_monitor_state("acc", "b", json!({ "n": 2 }))
            .await
            .unwrap(),
        "a late save does not bring a deleted monitor back"
    );
    assert_eq!(store.get_monitor("acc", "b").await.unwrap(), None);
    assert!(
        store.get_monitor("other", "a").await.unwrap().is_some(),
        "accounts are apart"
    );
    assert_eq!(
        log.snapshot("acc").await.unwrap().seq,
        0,
        "monitor writes are not events"
    );
}

async fn monitors_survive_a_reopen(reopen: impl Fn() -> (Arc<dyn MonitorStore>, FeedRx)) {
    {
        let (store, _feed) = reopen();
        store
            .put_monitor("acc", "m", json!({ "v": 1 }))
            .await
            .unwrap();
        store
            .save_monitor_state("acc", "m", json!({ "s": 1 }))
            .await
            .unwrap();
    }
    let (store, _feed) = reopen();
    let monitor = store.get_monitor("acc", "m").await.unwrap().expect("kept");
    assert_eq!(
        (monitor.spec, monitor.state),
        (json!({ "v": 1 }), Some(json!({ "s": 1 })))
    );
}

async fn keeps_everything_across_a_reopen(reopen: impl Fn() -> (Arc<dyn EventLog>, FeedRx)) {
    let epoch = {
        let (store, _feed) = reopen();
        for _ in 0..3 {
            seq_of(&*store, counting("acc", "p1")).await;
        }
        store.snapshot("acc").await.unwrap().epoch
    };
    assert!(!epoch.is_empty(), "a durable store names its epoch");
    let (store, _feed) = reopen();
    assert_eq!(
        seq_of(&*store, counting("acc", "p1")).await,
        4,
        "sequence continues after reopen"
    );
    let snapshot = store.snapshot("acc").await.unwrap();
    assert_eq!(snapshot.phones["p1"], json!({ "n": 4 }));
    assert_eq!(snapshot.epoch, epoch, "the epoch is stable across a reopen");
    assert_eq!(store.events_since("acc", 2, 10).await.unwrap().epoch, epoch);
}

/// A fresh place (a new data dir, an empty Redis prefix) starts new
/// sequences: its epoch differs, so no client mistakes its seqs for old ones.
async fn a_fresh_place_is_a_new_epoch(
    first: (Arc<dyn EventLog>, FeedRx),
    second: (Arc<dyn EventLog>, FeedRx),
) {
    seq_of(&*first.0, draft("acc", "x", json!({}))).await;
    let old = first.0.snapshot("acc").await.unwrap().epoch;
    let new = second.0.snapshot("acc").await.unwrap();
    assert_eq!(new.seq, 0);
    assert_ne!(new.epoch, old, "a new place, a new epoch");
}

async fn trim_drops_events_past_the_age_limit(store: Arc<dyn EventLog>) {
    seq_of(&*store, draft("acc", "x", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(5)).await; // age must exceed zero on the millisecond clock
    assert_eq!(store.trim().await.unwrap(), 1);
    let history = store.events_since("acc", 0, 10).await.unwrap();
    assert!(history.events.is_empty() && !history.complete && history.head == 1);
}

async fn close_answers_what_was_submitted_then_refuses_everything(
    store: Arc<dyn EventLog>,
    mut feed: FeedRx,
) {
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(draft("acc", "x", json!({ "i": i }))).await })
        })
        .collect();
    store.close().await.expect("close");
    let mut acknowledged = 0;
    for p in pending {
        match p.await.expect("append task") {
            Ok(_) => acknowledged += 1,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("an append around close failed with {e}"),
        }
    }
    let mut fed = 0;
    while feed.try_recv().is_ok() {
        fed += 1;
    }
    assert_eq!(fed, acknowledged, "every acknowledged append was fed");
    assert!(matches!(
        store.append(draft("acc", "x", json!({}))).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        store.events_since("acc", 0, 10).await.is_err(),
        "reads fail too"
    );
    assert!(store.ping().await.is_err(), "and so does ping");
    store.close().await.expect("closing twice is harmless");
}
