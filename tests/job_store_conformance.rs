//! The job role's conformance suite, written once and instantiated for
//! SQLite and Redis by [`job_conformance!`] (the pattern of
//! `tests/store_conformance.rs`): the one-running-per-kind guard under
//! concurrent starts and across a reopen, the compare-and-set that lets one
//! of several writers win, listings and the sweeper's due jobs — and the
//! jobs service on top, with an injected clock: stale jobs failed and
//! retried on the backoff schedule by exactly one of two sweeping nodes.

use serde_json::json;
use statushub::{
    config::{Limits, Retention},
    event::Event,
    hub::Hub,
    jobs::{Clock, Jobs, ProgressReport, StartRequest, Status},
    store::{
        EventLog, Feed, Idempotency, JobQuery, JobStore, SqliteStore, StoreError, StoredJob,
        jobs::{Started, Updated},
    },
};
use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};
use tokio::sync::mpsc;

mod redis_support;

use redis_support::Place;

macro_rules! job_conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;
            job_conformance!(@cases $open,
                the_guard_allows_one_running_job_per_kind,
                concurrent_starts_have_exactly_one_winner,
                compare_and_set_has_exactly_one_winner,
                idempotent_starts_replay_or_conflict,
                listings_are_newest_first_filtered_and_paged,
                due_jobs_span_accounts_in_deadline_order,
                stale_jobs_fail_once_and_retry_on_schedule,
            );
            #[tokio::test]
            async fn the_guard_and_the_job_survive_a_reopen() {
                let place = Place::new();
                let open = $open;
                super::the_guard_and_the_job_survive_a_reopen(|| open(&place)).await;
            }
        }
    };
    (@cases $open:expr, $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let place = Place::new();
                let open = $open;
                super::$case(|| open(&place)).await;
            }
        )+
    };
}

/// A store handle: one "node". Opening twice on one place is two nodes
/// sharing a store (or a reopen, once the first is dropped).
type Node = (
    Arc<dyn JobStore>,
    Arc<dyn EventLog>,
    mpsc::Receiver<Arc<Event>>,
);

fn node<T: JobStore + EventLog>(make: impl FnOnce(Feed) -> T) -> Node {
    let (tx, rx) = mpsc::channel(100_000);
    let store = Arc::new(make(tx));
    (store.clone(), store, rx)
}

job_conformance!(sqlite, |place: &Place| node(|feed| {
    SqliteStore::open(place.dir(), Retention::default(), feed).expect("open sqlite")
}));
job_conformance!(redis, |place: &Place| node(|feed| {
    place.redis().store(feed, Retention::default())
}));

fn job(account: &str, id: &str, kind: &str, created_ms: i64) -> StoredJob {
    StoredJob {
        account_id: account.into(),
        id: id.into(),
        kind: kind.into(),
        status: "running".into(),
        version: 1,
        created_ms,
        deadline_ms: Some(created_ms + 1000),
        doc: json!({"n": 0}),
    }
}

fn ended(mut job: StoredJob, status: &str) -> StoredJob {
    job.status = status.into();
    job.version += 1;
    job.deadline_ms = None;
    job
}

async fn created(store: &dyn JobStore, job: StoredJob) -> StoredJob {
    match store.start_job(job, None).await.expect("start") {
        Started::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn the_guard_allows_one_running_job_per_kind(open: impl Fn() -> Node) {
    let (store, _, _feed) = open();
    let a = created(&*store, job("acc", "a", "orders", 1)).await;
    match store
        .start_job(job("acc", "b", "orders", 2), None)
        .await
        .unwrap()
    {
        Started::Busy(running) => assert_eq!(running.id, "a"),
        other => panic!("a second running job of the kind: {other:?}"),
    }
    created(&*store, job("acc", "c", "claims", 3)).await;
    created(&*store, job("other", "b", "orders", 4)).await;
    assert_eq!(
        store
            .update_job(ended(a.clone(), "completed"), 1)
            .await
            .unwrap(),
        Updated::Done
    );
    let b = created(&*store, job("acc", "b", "orders", 5)).await;
    // Making the finished job run again while b runs is refused, naming b.
    let mut again = ended(a, "completed");
    again.status = "running".into();
    again.version = 3;
    match store.update_job(again, 2).await.unwrap() {
        Updated::Busy(running) => assert_eq!(running.id, b.id),
        other => panic!("{other:?}"),
    }
    assert!(store.get_job("acc", "nope").await.unwrap().is_none());
}

async fn concurrent_starts_have_exactly_one_winner(open: impl Fn() -> Node) {
    // Two nodes, eight starts each, all at once.
    let (one, _, _f1) = open();
    let (two, _, _f2) = open();
    let starts = (0..16).map(|i| {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        async move {
            store
                .start_job(job("acc", &format!("j{i}"), "orders", i), None)
                .await
        }
    });
    let answers = futures::future::join_all(starts).await;
    let winners: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            Ok(Started::Created(job)) => Some(job.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for answer in &answers {
        match answer {
            Ok(Started::Created(_)) => {}
            Ok(Started::Busy(running)) => assert_eq!(running.id, winners[0]),
            other => panic!("{other:?}"),
        }
    }
}

async fn compare_and_set_has_exactly_one_winner(open: impl Fn() -> Node) {
    let (one, _, _f1) = open();
    let (two, _, _f2) = open();
    let first = created(&*one, job("acc", "a", "orders", 1)).await;
    let mut a = ended(first.clone(), "failed");
    a.doc = json!({"by": "one"});
    let mut b = ended(first, "failed");
    b.doc = json!({"by": "two"});
    let (x, y) = tokio::join!(one.update_job(a, 1), two.update_job(b, 1));
    let answers = [x.unwrap(), y.unwrap()];
    assert_eq!(
        answers.iter().filter(|a| **a == Updated::Done).count(),
        1,
        "{answers:?}"
    );
    let stored = one.get_job("acc", "a").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    for answer in answers {
        if let Updated::Moved(now) = answer {
            assert_eq!(
                now,
                Some(stored.clone()),
                "the loser sees the winner's write"
            );
        }
    }
    assert_eq!(
        one.update_job(ended(stored, "x"), 9).await.unwrap(),
        Updated::Moved(Some(one.get_job("acc", "a").await.unwrap().unwrap()))
    );
}

async fn idempotent_starts_replay_or_conflict(open: impl Fn() -> Node) {
    let (store, _, _feed) = open();
    let key = |fingerprint: &str| {
        Some(Idempotency {
            key: "k".into(),
            fingerprint: fingerprint.into(),
        })
    };
    let first = store
        .start_job(job("acc", "a", "orders", 1), key("f1"))
        .await
        .unwrap();
    assert!(matches!(first, Started::Created(_)));
    match store
        .start_job(job("acc", "b", "orders", 2), key("f1"))
        .await
        .unwrap()
    {
        Started::Replayed(job) => assert_eq!(job.id, "a"),
        other => panic!("{other:?}"),
    }
    let conflict = store
        .start_job(job("acc", "c", "claims", 3), key("f2"))
        .await;
    assert!(
        matches!(conflict, Err(StoreError::IdempotencyConflict)),
        "{conflict:?}"
    );
    assert!(
        store.get_job("acc", "c").await.unwrap().is_none(),
        "nothing stored"
    );
}

async fn listings_are_newest_first_filtered_and_paged(open: impl Fn() -> Node) {
    let (store, _, _feed) = open();
    for i in 0..6 {
        let started = created(
            &*store,
            job("acc", &format!("j{i}"), &format!("k{}", i % 2), 100 + i),
        )
        .await;
        if i < 5 {
            store
                .update_job(
                    ended(started, if i == 3 { "failed" } else { "completed" }),
                    1,
                )
                .await
                .unwrap();
        }
    }
    let ids = |jobs: Vec<StoredJob>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = store.list_jobs("acc", &JobQuery::default()).await.unwrap();
    assert_eq!(ids(all), ["j5", "j4", "j3", "j2", "j1", "j0"]);
    let page = |before: Option<&str>| JobQuery {
        before: before.map(Into::into),
        limit: Some(2),
        ..JobQuery::default()
    };
    assert_eq!(
        ids(store.list_jobs("acc", &page(None)).await.unwrap()),
        ["j5", "j4"]
    );
    assert_eq!(
        ids(store.list_jobs("acc", &page(Some("j4"))).await.unwrap()),
        ["j3", "j2"]
    );
    assert!(
        store
            .list_jobs("acc", &page(Some("nope")))
            .await
            .unwrap()
            .is_empty()
    );
    let failed = JobQuery {
        status: Some("failed".into()),
        ..JobQuery::default()
    };
    assert_eq!(ids(store.list_jobs("acc", &failed).await.unwrap()), ["j3"]);
    let k1 = JobQuery {
        kind: Some("k1".into()),
        limit: Some(2),
        ..JobQuery::default()
    };
    assert_eq!(
        ids(store.list_jobs("acc", &k1).await.unwrap()),
        ["j5", "j3"]
    );
    assert!(
        store
            .list_jobs("other", &JobQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn due_jobs_span_accounts_in_deadline_order(open: impl Fn() -> Node) {
    let (store, _, _feed) = open();
    let late = created(&*store, job("a1", "late", "k", 5000)).await; // deadline 6000
    created(&*store, job("a2", "early", "k", 1000)).await; // deadline 2000
    created(&*store, job("a3", "mid", "k", 3000)).await; // deadline 4000
    let due = |now| {
        let store = store.clone();
        async move {
            store
                .due_jobs(now, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(1999).await, Vec::<String>::new());
    assert_eq!(due(4000).await, ["early", "mid"]);
    assert_eq!(store.due_jobs(10_000, 2).await.unwrap().len(), 2, "limit");
    store.update_job(ended(late, "completed"), 1).await.unwrap();
    assert_eq!(
        due(10_000).await,
        ["early", "mid"],
        "a job without deadline is never due"
    );
}

async fn the_guard_and_the_job_survive_a_reopen(open: impl Fn() -> Node) {
    {
        let (store, log, _feed) = open();
        let mut running = job("acc", "a", "orders", 1);
        running.doc = json!({"checkpoint": {"page": 7}});
        created(&*store, running).await;
        log.close().await.unwrap();
    }
    let (store, _, _feed) = open();
    let kept = store.get_job("acc", "a").await.unwrap().expect("kept");
    assert_eq!(
        (kept.status.as_str(), &kept.doc),
        ("running", &json!({"checkpoint": {"page": 7}}))
    );
    match store
        .start_job(job("acc", "b", "orders", 2), None)
        .await
        .unwrap()
    {
        Started::Busy(running) => assert_eq!(running.id, "a", "the guard survived"),
        other => panic!("{other:?}"),
    }
}

/// Two nodes sweep one stale job at the same injected time: it fails once
/// (one `failed` event), is re-run once after `backoffMs`, then after
/// `backoffMs × multiplier` (plus at most 20 % jitter), keeping the checkpoint.
async fn stale_jobs_fail_once_and_retry_on_schedule(open: impl Fn() -> Node) {
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let nodes: Vec<(Arc<Jobs>, Arc<Hub>)> = (0..2)
        .map(|_| {
            let (jobs, log, feed) = open();
            let hub = Hub::start(log, feed, Limits::default());
            (Jobs::new(jobs, hub.clone(), clock.clone()), hub)
        })
        .collect();
    let jobs = &nodes[0].0;
    let request: StartRequest =
        serde_json::from_value(json!({"kind": "orders", "staleAfterMs": 60_000,
        "retry": {"maxAttempts": 3, "backoffMs": 10_000, "backoffMultiplier": 3}}))
        .unwrap();
    let (view, _) = jobs.start("acc", request, None).await.unwrap();
    let id = view.sync_id.clone();
    let checkpoint: ProgressReport =
        serde_json::from_value(json!({"done": 5, "checkpoint": {"page": 5}})).unwrap();
    jobs.report("acc", &id, &checkpoint).await.unwrap();
    let sweep_both = || async {
        let (a, b) = tokio::join!(nodes[0].0.sweep(), nodes[1].0.sweep());
        a.unwrap() + b.unwrap()
    };

    now.fetch_add(59_999, Ordering::SeqCst);
    assert_eq!(sweep_both().await, 0, "not stale yet");
    now.fetch_add(1, Ordering::SeqCst);
    assert_eq!(sweep_both().await, 1, "exactly one node fails it");
    let failed = jobs.get("acc", &id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_deref(), Some("stale: no progress for 1m"));
    let failed_at = now.load(Ordering::SeqCst);
    let retry_at = |view: &statushub::jobs::JobView| {
        time::OffsetDateTime::parse(
            view.next_retry_at.as_deref().expect("nextRetryAt"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp_nanos() as i64
            / 1_000_000
    };
    let wait = retry_at(&failed) - failed_at;
    assert!((10_000..=12_000).contains(&wait), "first wait {wait} ms");

    now.store(retry_at(&failed) - 1, Ordering::SeqCst);
    assert_eq!(sweep_both().await, 0, "retry not due yet");
    now.store(retry_at(&failed), Ordering::SeqCst);
    assert_eq!(sweep_both().await, 1, "exactly one node re-runs it");
    let second = jobs.get("acc", &id).await.unwrap();
    assert_eq!(
        (second.status, second.attempt, second.awaiting_worker),
        (Status::Running, 2, true)
    );
    assert_eq!(
        second.checkpoint,
        Some(json!({"page": 5})),
        "the checkpoint is handed back"
    );
    let due = jobs
        .list(
            "acc",
            statushub::jobs::ListQuery {
                due: true,
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        due.syncs
            .iter()
            .map(|j| j.sync_id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );

    let failure: ProgressReport =
        serde_json::from_value(json!({"status": "error", "error": "boom"})).unwrap();
    let failed_again = jobs.report("acc", &id, &failure).await.unwrap();
    let wait = retry_at(&failed_again) - now.load(Ordering::SeqCst);
    assert!(
        (30_000..=36_000).contains(&wait),
        "second wait {wait} ms = backoff × 3"
    );
    now.store(retry_at(&failed_again), Ordering::SeqCst);
    assert_eq!(sweep_both().await, 1);
    now.fetch_add(60_000, Ordering::SeqCst);
    assert_eq!(sweep_both().await, 1, "attempt 3 goes stale");
    let last = jobs.get("acc", &id).await.unwrap();
    assert_eq!(
        (last.status, last.attempt, last.next_retry_at.clone()),
        (Status::Failed, 3, None),
        "no attempts left"
    );

    // Every status change is an event of its own (a progress event may sit
    // between them): start, stale, re-run, failed, re-run, stale.
    let history = nodes[0].1.history("acc", 0, 1000).await.unwrap();
    // Each re-run was also announced once as `sync.retry`.
    let retries = history
        .events
        .iter()
        .filter(|e| e.event == "sync.retry")
        .count();
    assert_eq!(retries, 2, "one sync.retry per re-run");
    let statuses: Vec<String> = history
        .events
        .iter()
        .filter(|e| e.event == "sync_progress")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e.data.get()).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut changes = statuses.clone();
    changes.dedup();
    assert_eq!(
        changes,
        [
            "running", "failed", "running", "failed", "running", "failed"
        ],
        "{statuses:?}"
    );
}
