//! What only the Redis store has to show: epochs when Redis loses an
//! account, check-and-set between two nodes' writers, bounded errors during
//! a Redis outage and recovery without a restart, and the durability check.
//! The shared behaviour is in `store_conformance.rs`.

mod redis_support;

use redis_support::{OwnRedis, Prefix};
use serde_json::{Value, json};
use statushub::{
    config::Retention,
    store::{
        Appended, Body, Draft, Durability, EntryChange, EventLog, MonitorStore, RedisSettings,
        RedisStore, Section, StoreError,
    },
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// The contract's bound on an answer while Redis is unreachable.
const OUTAGE_BOUND: Duration = Duration::from_secs(2);

fn draft(account: &str, data: Value) -> Draft {
    Draft {
        account_id: account.into(),
        event: "x".into(),
        id: statushub::event::new_id(),
        published_at: "2026-01-01T00:00:00Z".into(),
        body: Body::Fixed(serde_json::value::to_raw_value(&data).unwrap()),
        idempotency: None,
    }
}

/// Counts how many times its entry was written, and says so in its data.
fn counting(account: &str) -> Draft {
    let derive = Arc::new(|previous: Option<&Value>| {
        let n = previous.and_then(|p| p["n"].as_u64()).unwrap_or(0);
        EntryChange::kept(json!({ "n": n + 1 }))
    });
    Draft {
        body: Body::Entry {
            section: Section::Phones,
            key: "p1".into(),
            derive,
        },
        ..draft(account, Value::Null)
    }
}

async fn seq_of(store: &dyn EventLog, d: Draft) -> u64 {
    match store.append(d).await.expect("append") {
        Appended::New(r) => r.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_redis_lost_gets_a_new_epoch_and_restarts_its_seqs() {
    let prefix = Prefix::fresh();
    let (store, _feed) = prefix.open(Retention::default()).await;
    for i in 0..3 {
        seq_of(&*store, draft("acc", json!({ "i": i }))).await;
    }
    let before = store.snapshot("acc").await.unwrap();
    assert_eq!(before.seq, 3);
    assert!(!before.epoch.is_empty(), "an account has an epoch");
    assert_eq!(
        store.events_since("acc", 1, 10).await.unwrap().epoch,
        before.epoch,
        "history reads name the same epoch"
    );

    prefix.forget_account("acc");
    let after = store.snapshot("acc").await.unwrap();
    assert_ne!(after.epoch, before.epoch, "lost data means a new epoch");
    assert_eq!(after.seq, 0);
    assert_eq!(seq_of(&*store, draft("acc", json!({}))).await, 1);
    let resumed = store.events_since("acc", 3, 10).await.unwrap();
    assert!(
        !resumed.complete,
        "a reader at seq 3 of the old epoch must start over"
    );
    assert_eq!(resumed.epoch, after.epoch, "the epoch of the new sequence");
}

#[tokio::test]
async fn a_lost_sequence_never_mixes_with_the_old_history() {
    let prefix = Prefix::fresh();
    let (store, _feed) = prefix.open(Retention::default()).await;
    for i in 0..3 {
        seq_of(&*store, draft("acc", json!({ "old": i }))).await;
    }
    let old_epoch = store.snapshot("acc").await.unwrap().epoch;
    // Only the meta hash is lost (e.g. evicted): the stream is still there.
    let client = redis::Client::open(redis_support::SHARED_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:{{acc}}:meta", prefix.name))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(seq_of(&*store, draft("acc", json!({ "new": 1 }))).await, 1);
    let history = store.events_since("acc", 0, 10).await.unwrap();
    let data: Vec<&str> = history.events.iter().map(|e| e.data.get()).collect();
    assert_eq!(
        data,
        [r#"{"new":1}"#],
        "events of the old sequence are gone"
    );
    assert!(history.complete);
    assert_ne!(history.epoch, old_epoch);
}

/// Two nodes (two stores, each with its own writer and entry beliefs) on
/// one Redis: every derived entry sees the latest value, whoever wrote it.
#[tokio::test]
async fn derived_entries_stay_exact_across_two_nodes() {
    let prefix = Prefix::fresh();
    let (a, _fa) = prefix.open(Retention::default()).await;
    let (b, _fb) = prefix.open(Retention::default()).await;
    seq_of(&*a, counting("acc")).await;
    seq_of(&*b, counting("acc")).await; // b knew nothing: it learns n = 1
    seq_of(&*a, counting("acc")).await; // a believed n = 1: stale, retried
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            seq_of(&*store, counting("acc")).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let snapshot = a.snapshot("acc").await.unwrap();
    assert_eq!(snapshot.seq, 43);
    assert_eq!(snapshot.phones["p1"], json!({ "n": 43 }));
    let history = a.events_since("acc", 0, 100).await.unwrap();
    for event in &history.events {
        assert_eq!(
            event.data.get(),
            format!(r#"{{"n":{}}}"#, event.seq),
            "event {} derived from the entry as it was just before it",
            event.seq
        );
    }
}

/// Appends that arrive together share a pipeline (one round trip), as
/// SQLite's share a commit, instead of one round trip each.
#[tokio::test]
async fn concurrent_appends_share_round_trips() {
    let prefix = Prefix::fresh();
    let (store, _feed) = prefix.open(Retention::default()).await;
    let appends = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let account = if i % 2 == 0 { "a" } else { "b" };
            seq_of(&*store, draft(account, json!({ "i": i }))).await
        })
    });
    for done in futures::future::join_all(appends).await {
        done.unwrap();
    }
    let trips = store.append_round_trips();
    assert!(
        trips <= 20,
        "200 concurrent appends took {trips} round trips"
    );
    assert_eq!(store.snapshot("a").await.unwrap().seq, 100);
}

/// Asserts that `call` fails as `Unavailable` within the outage bound.
async fn fails_in_time<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung while Redis was down"));
    let took = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what} while Redis is down: {result:?}"
    );
    assert!(took < OUTAGE_BOUND, "{what} took {took:?}");
}

#[tokio::test]
async fn while_redis_is_down_calls_fail_fast_and_recover_when_it_returns() {
    let mut redis = OwnRedis::start();
    let prefix = Prefix::on(&redis.url());
    let (store, _feed) = prefix.open(Retention::default()).await;
    assert_eq!(seq_of(&*store, draft("acc", json!({}))).await, 1);
    let epoch = store.snapshot("acc").await.unwrap().epoch;

    redis.stop();
    // Several times over: the first calls find the broken connection, the
    // later ones a reconnect in progress; all must answer in time.
    for _ in 0..3 {
        fails_in_time("append", store.append(draft("acc", json!({})))).await;
        fails_in_time("snapshot", store.snapshot("acc")).await;
        fails_in_time("events_since", store.events_since("acc", 0, 10)).await;
        fails_in_time("ping", store.ping()).await;
        fails_in_time("put_monitor", store.put_monitor("acc", "m", json!({}))).await;
        fails_in_time("get_monitors", store.get_monitors(None)).await;
        fails_in_time("trim", store.trim()).await;
    }
    let burst = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.append(draft("acc", json!({}))).await;
            (result.is_err(), started.elapsed())
        })
    });
    for done in futures::future::join_all(burst).await {
        let (failed, took) = done.unwrap();
        assert!(
            failed && took < OUTAGE_BOUND,
            "a queued append took {took:?}"
        );
    }

    redis.restart();
    // The same store, no restart: it reconnects on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seq = loop {
        match store.append(draft("acc", json!({ "back": true }))).await {
            Ok(Appended::New(receipt)) => break receipt.seq,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => assert!(
                Instant::now() < deadline,
                "no recovery 10 s after Redis came back: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    };
    store.ping().await.expect("ping after recovery");
    // This Redis kept nothing: the account starts a new sequence, and says so.
    assert_eq!(seq, 1);
    let snapshot = store.snapshot("acc").await.unwrap();
    assert_ne!(
        snapshot.epoch, epoch,
        "a Redis that lost the data shows a new epoch"
    );
    assert!(store.put_monitor("acc", "m", json!({})).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_clear_error() {
    let redis = OwnRedis::start();
    let url = redis.url();
    drop(redis);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let started = Instant::now();
    let err = RedisStore::open(&RedisSettings::new(url), Retention::default(), tx)
        .await
        .err()
        .expect("nothing listens there");
    assert!(err.to_string().contains("not reachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = RedisStore::open(&RedisSettings::new("http://nope"), Retention::default(), tx)
        .await
        .err()
        .expect("not a Redis URL");
    assert!(err.to_string().contains("URL"), "{err}");
}

#[tokio::test]
async fn the_durability_check_reads_the_aof_settings() {
    let redis = OwnRedis::start();
    let prefix = Prefix::on(&redis.url());
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let store = RedisStore::open(&prefix.settings(), Retention::default(), tx)
        .await
        .unwrap();
    let Durability::AtRisk(why) = store.durability().await else {
        panic!("appendonly no loses acked events");
    };
    assert!(why.contains("appendonly no"), "{why}");

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (setting, value) in [("appendonly", "yes"), ("appendfsync", "everysec")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(setting)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let Durability::AtRisk(why) = store.durability().await else {
        panic!("everysec can lose a second");
    };
    assert!(why.contains("everysec"), "{why}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.durability().await, Durability::Durable);
}

#[tokio::test]
async fn a_disabled_config_command_is_tolerated() {
    let redis = OwnRedis::start_with(&["--rename-command", "CONFIG", ""]);
    let prefix = Prefix::on(&redis.url());
    let (store, _feed) = prefix.open(Retention::default()).await;
    assert!(matches!(
        store_durability(&prefix).await,
        Durability::Unknown(_)
    ));
    assert_eq!(
        seq_of(&*store, draft("acc", json!({}))).await,
        1,
        "still works"
    );
}

async fn store_durability(prefix: &Prefix) -> Durability {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    RedisStore::open(&prefix.settings(), Retention::default(), tx)
        .await
        .unwrap()
        .durability()
        .await
}
