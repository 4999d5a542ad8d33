//! One conformance suite every `Store` implementation must pass. Each check
//! takes a factory that opens the store on a given "location" (a data dir for
//! SQLite), so durability across a reopen is part of the contract too.

use serde_json::{Value, json};
use statushub::{
    config::Retention,
    event::Event,
    store::{Appended, Body, Draft, Idempotency, Section, SqliteStore, Store, StoreError},
};
use std::{path::Path, sync::Arc, time::Duration};
use tokio::sync::mpsc;

type Opened = (Arc<dyn Store>, mpsc::Receiver<Arc<Event>>);

fn open_sqlite(dir: &Path, retention: Retention) -> Opened {
    let (tx, rx) = mpsc::channel(100_000);
    (
        Arc::new(SqliteStore::open(dir, retention, tx).expect("open sqlite")),
        rx,
    )
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
        json!({ "n": n + 1 })
    });
    Draft {
        body: Body::Derived {
            section: Section::Phones,
            key: key.into(),
            derive,
        },
        ..draft(account, "phone_status_changed", Value::Null)
    }
}

async fn seq_of(store: &dyn Store, d: Draft) -> u64 {
    match store.append(d).await.expect("append") {
        Appended::New(r) => r.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

async fn sequences_are_per_account_and_gapless(
    store: Arc<dyn Store>,
    mut feed: mpsc::Receiver<Arc<Event>>,
) {
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

async fn idempotency_replays_and_conflicts(store: Arc<dyn Store>) {
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

async fn derived_entries_see_their_previous_value(store: Arc<dyn Store>) {
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

async fn history_pages_and_reports_completeness(store: Arc<dyn Store>) {
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
async fn retention_by_count(store: Arc<dyn Store>) {
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

#[tokio::test]
async fn sqlite_sequences_are_per_account_and_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let (store, feed) = open_sqlite(dir.path(), Retention::default());
    sequences_are_per_account_and_gapless(store, feed).await;
}

#[tokio::test]
async fn sqlite_idempotency_replays_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    idempotency_replays_and_conflicts(open_sqlite(dir.path(), Retention::default()).0).await;
}

#[tokio::test]
async fn sqlite_derived_entries_see_their_previous_value() {
    let dir = tempfile::tempdir().unwrap();
    derived_entries_see_their_previous_value(open_sqlite(dir.path(), Retention::default()).0).await;
}

#[tokio::test]
async fn sqlite_history_pages_and_reports_completeness() {
    let dir = tempfile::tempdir().unwrap();
    history_pages_and_reports_completeness(open_sqlite(dir.path(), Retention::default()).0).await;
}

#[tokio::test]
async fn sqlite_retention_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_events: 5,
        ..Retention::default()
    };
    retention_by_count(open_sqlite(dir.path(), retention).0).await;
}

#[tokio::test]
async fn sqlite_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _feed) = open_sqlite(dir.path(), Retention::default());
        for _ in 0..3 {
            seq_of(&*store, counting("acc", "p1")).await;
        }
    }
    let (store, _feed) = open_sqlite(dir.path(), Retention::default());
    assert_eq!(
        seq_of(&*store, counting("acc", "p1")).await,
        4,
        "sequence continues after reopen"
    );
    assert_eq!(
        store.snapshot("acc").await.unwrap().phones["p1"],
        json!({ "n": 4 })
    );
}

#[tokio::test]
async fn sqlite_trim_drops_events_past_the_age_limit() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_age: Duration::ZERO,
        ..Retention::default()
    };
    let (store, _feed) = open_sqlite(dir.path(), retention);
    seq_of(&*store, draft("acc", "x", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(5)).await; // age must exceed zero on the millisecond clock
    assert_eq!(store.trim().await.unwrap(), 1);
    let history = store.events_since("acc", 0, 10).await.unwrap();
    assert!(history.events.is_empty() && !history.complete && history.head == 1);
}
