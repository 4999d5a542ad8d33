//! The webhook roles' conformance suite ([`WebhookRegistry`], [`Outbox`]),
//! written once and instantiated per store by one `conformance!` line, as
//! `tests/store_conformance.rs` does for the event log: the outbox is
//! written in the append's atomic step, `servicesNotified` says exactly what
//! was queued, claims hand out heads in seq order and are exclusive, and
//! pending deliveries survive a reopen.

use serde_json::{Value, json};
use statushub::{
    config::Retention,
    event::Event,
    store::{
        Appended, Attempt, Body, Delivery, DeliveryStatus, Draft, Endpoint, EntryChange, EventLog,
        Feed, Idempotency, Next, Outbox, PutWebhook, Section, SqliteStore, WebhookRegistry,
    },
};
use std::sync::Arc;
use tokio::sync::mpsc;

mod redis_support;

use redis_support::Place;

trait Roles: EventLog + WebhookRegistry + Outbox {}
impl<T: EventLog + WebhookRegistry + Outbox> Roles for T {}

macro_rules! conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;
            conformance!(@case $open, the_registry_keeps_scopes_and_secrets);
            conformance!(@case $open, append_queues_exactly_what_services_notified_says);
            conformance!(@case $open, claims_hand_out_heads_in_seq_order_exclusively);
            #[tokio::test]
            async fn pending_deliveries_survive_a_reopen() {
                let place = Place::new();
                let first = open_with(&$open, &place);
                let queued = super::queue_two(&*first).await;
                drop(first);
                let again = open_with(&$open, &place);
                super::still_pending(&*again, queued).await;
            }
        }
    };
    (@case $open:expr, $test:ident) => {
        #[tokio::test]
        async fn $test() {
            let place = Place::new();
            super::$test(open_with(&$open, &place)).await;
        }
    };
}

conformance!(sqlite, |place: &Place, feed: Feed| {
    Arc::new(SqliteStore::open(place.dir(), Retention::default(), feed).expect("open"))
});
conformance!(redis, |place: &Place, feed: Feed| {
    Arc::new(place.redis().store(feed, Retention::default()))
});

fn open_with<T: Roles>(open: &impl Fn(&Place, Feed) -> Arc<T>, place: &Place) -> Arc<dyn Roles> {
    let (tx, rx) = mpsc::channel::<Arc<Event>>(10_000);
    // The feed is not under test here; keep it drained.
    tokio::spawn(async move {
        let mut rx = rx;
        while rx.recv().await.is_some() {}
    });
    open(place, tx)
}

fn endpoint(id: &str, account: Option<&str>, events: &[&str]) -> Endpoint {
    Endpoint {
        id: id.into(),
        account_id: account.map(Into::into),
        url: "http://127.0.0.1:9/".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: None,
        enabled: true,
        secret: format!("whsec_{id}"),
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
        previous_secrets: vec![],
        note: None,
    }
}

fn fixed(account: &str, event: &str) -> Draft {
    Draft {
        account_id: account.into(),
        event: event.into(),
        id: statushub::event::new_id(),
        published_at: "2026-01-01T00:00:00Z".into(),
        body: Body::Fixed(serde_json::value::to_raw_value(&json!({"x": 1})).unwrap()),
        idempotency: None,
    }
}

fn status_sync(account: &str, key: Option<(&str, &str)>) -> Draft {
    Draft {
        body: Body::Entry {
            section: Section::Credentials,
            key: "stripe:u1".into(),
            derive: Arc::new(|_| {
                EntryChange::kept(json!({"success": true, "servicesNotified": []}))
            }),
        },
        idempotency: key.map(|(key, fingerprint)| Idempotency {
            key: key.into(),
            fingerprint: fingerprint.into(),
        }),
        ..fixed(account, "status_sync")
    }
}

async fn put(store: &dyn Roles, e: Endpoint) {
    assert!(matches!(
        store.put_webhook(e).await.unwrap(),
        PutWebhook::Created(_)
    ));
}

async fn deliveries(store: &dyn Roles, endpoint: &str) -> Vec<Delivery> {
    store.deliveries(endpoint, None, 100).await.unwrap()
}

async fn the_registry_keeps_scopes_and_secrets(store: Arc<dyn Roles>) {
    put(&*store, endpoint("a", None, &["*"])).await;
    let mut changed = endpoint("a", None, &["deploy.*"]);
    changed.secret = "whsec_other".into();
    changed.created_at = "later".into();
    let PutWebhook::Updated(kept) = store.put_webhook(changed).await.unwrap() else {
        panic!("an update")
    };
    assert_eq!(
        (kept.secret.as_str(), kept.created_at.as_str()),
        ("whsec_a", "2026-01-01T00:00:00Z")
    );
    assert_eq!(kept.events, ["deploy.*"]);
    assert_eq!(
        store
            .put_webhook(endpoint("a", Some("acme"), &["*"]))
            .await
            .unwrap(),
        PutWebhook::Taken
    );
    put(&*store, endpoint("b", Some("acme"), &["*"])).await;
    assert_eq!(
        store.get_webhook("a").await.unwrap().unwrap().events,
        ["deploy.*"]
    );
    let ids = |list: Vec<Endpoint>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_webhooks(None).await.unwrap()), ["a", "b"]);
    assert_eq!(ids(store.list_webhooks(Some(None)).await.unwrap()), ["a"]);
    assert_eq!(
        ids(store.list_webhooks(Some(Some("acme"))).await.unwrap()),
        ["b"]
    );
    assert!(
        !store.delete_webhook(None, "b").await.unwrap(),
        "not in that scope"
    );
    assert!(store.delete_webhook(Some("acme"), "b").await.unwrap());
    assert!(store.get_webhook("b").await.unwrap().is_none());
}

async fn append_queues_exactly_what_services_notified_says(store: Arc<dyn Roles>) {
    put(&*store, endpoint("all-sync", None, &["status_sync"])).await;
    put(&*store, endpoint("acme-all", Some("acme"), &["*"])).await;
    put(&*store, endpoint("other", Some("other"), &["*"])).await;
    let mut off = endpoint("off", None, &["*"]);
    off.enabled = false;
    put(&*store, off).await;

    let Appended::New(receipt) = store
        .append(status_sync("acme", Some(("k", "f1"))))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    let history = store.events_since("acme", 0, 10).await.unwrap();
    let event = &history.events[0];
    let data: Value = serde_json::from_str(event.data.get()).unwrap();
    assert_eq!(data["servicesNotified"], json!(["acme-all", "all-sync"]));
    let snapshot = store.snapshot("acme").await.unwrap();
    assert_eq!(
        snapshot.credentials["stripe:u1"]["servicesNotified"],
        json!(["acme-all", "all-sync"])
    );
    for id in ["acme-all", "all-sync"] {
        let queued = deliveries(&*store, id).await;
        assert_eq!(queued.len(), 1, "{id}");
        let d = &queued[0];
        assert_eq!(
            (d.seq, d.event_id.as_str(), d.status),
            (receipt.seq, receipt.id.as_str(), DeliveryStatus::Pending)
        );
        let body: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(
            body,
            serde_json::to_value(event).unwrap(),
            "the body is the envelope"
        );
    }
    assert!(deliveries(&*store, "other").await.is_empty());
    assert!(deliveries(&*store, "off").await.is_empty());

    // A replay and a refused append queue nothing.
    assert!(matches!(
        store.append(status_sync("acme", Some(("k", "f1")))).await,
        Ok(Appended::Replayed(_))
    ));
    assert!(
        store
            .append(status_sync("acme", Some(("k", "f2"))))
            .await
            .is_err()
    );
    assert_eq!(deliveries(&*store, "acme-all").await.len(), 1);
    // Other events: matched by name, data untouched.
    store.append(fixed("acme", "deploy.done")).await.unwrap();
    assert_eq!(deliveries(&*store, "acme-all").await.len(), 2);
    assert_eq!(deliveries(&*store, "all-sync").await.len(), 1);
}

fn attempt(next: Next) -> Attempt {
    Attempt {
        status_code: Some(500),
        error: Some("answered 500".into()),
        latency_ms: 3,
        next,
    }
}

async fn claims_hand_out_heads_in_seq_order_exclusively(store: Arc<dyn Roles>) {
    put(&*store, endpoint("h", None, &["*"])).await;
    for _ in 0..3 {
        store.append(fixed("acme", "tick")).await.unwrap();
    }
    store.append(fixed("zeta", "tick")).await.unwrap();
    let now = statushub::webhooks::system_clock()() + 1000;
    // Two dispatchers claim at once: each head goes to exactly one.
    let (a, b) = tokio::join!(
        store.claim_due(now, 60_000, 10),
        store.claim_due(now, 60_000, 10)
    );
    let mut claimed: Vec<Delivery> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    claimed.sort_by(|x, y| x.account_id.cmp(&y.account_id));
    let heads: Vec<(&str, u64)> = claimed
        .iter()
        .map(|d| (d.account_id.as_str(), d.seq))
        .collect();
    assert_eq!(heads, [("acme", 1), ("zeta", 1)], "heads only, once each");
    assert!(
        store.claim_due(now, 60_000, 10).await.unwrap().is_empty(),
        "leased"
    );

    // A failed head waits, and so does everything behind it.
    let head = claimed.remove(0);
    assert!(
        store
            .settle(&head, attempt(Next::RetryAt(now + 5_000)))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_due(now + 1_000, 60_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|d| d.account_id != "acme")
    );
    let again = store.claim_due(now + 5_000, 60_000, 10).await.unwrap();
    let again: Vec<&Delivery> = again.iter().filter(|d| d.account_id == "acme").collect();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].seq, again[0].attempts, again[0].last_status),
        (1, 1, Some(500))
    );
    assert!(
        store
            .settle(
                again[0],
                Attempt {
                    next: Next::Delivered,
                    status_code: Some(204),
                    ..attempt(Next::Delivered)
                }
            )
            .await
            .unwrap()
    );
    let next = store.claim_due(now + 5_000, 60_000, 10).await.unwrap();
    assert_eq!(
        next.iter().find(|d| d.account_id == "acme").map(|d| d.seq),
        Some(2)
    );
    // A released claim is claimable again at once.
    let second = next.into_iter().find(|d| d.account_id == "acme").unwrap();
    assert!(store.release(&second).await.unwrap());
    assert_eq!(
        store
            .claim_due(now + 5_000, 60_000, 10)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.account_id == "acme")
            .count(),
        1
    );
    // Given up: no longer pending; a manual retry makes it pending again.
    let delivered = store
        .deliveries("h", Some(DeliveryStatus::Delivered), 10)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    let retried = store
        .retry_delivery("h", &delivered[0].id, now)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert!(
        store
            .retry_delivery("other", &delivered[0].id, now)
            .await
            .unwrap()
            .is_none()
    );
    let depth = store.outbox_depth().await.unwrap();
    assert_eq!(depth.pending, 4);
    assert!(depth.oldest_pending_ms.is_some());
}

async fn queue_two(store: &dyn Roles) -> Vec<String> {
    put(store, endpoint("h", None, &["*"])).await;
    store.append(fixed("acme", "a")).await.unwrap();
    store.append(fixed("acme", "b")).await.unwrap();
    store.close().await.unwrap();
    vec!["h".into()]
}

async fn still_pending(store: &dyn Roles, endpoints: Vec<String>) {
    for id in endpoints {
        let pending = store
            .deliveries(&id, Some(DeliveryStatus::Pending), 10)
            .await
            .unwrap();
        let mut seqs: Vec<u64> = pending.iter().map(|d| d.seq).collect();
        seqs.sort();
        assert_eq!(seqs, [1, 2]);
    }
    let now = statushub::webhooks::system_clock()() + 1000;
    let claimed = store.claim_due(now, 60_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.seq).collect::<Vec<_>>(), [1]);
}

/// SQLite drops finished deliveries with the events (retention age), and
/// never a pending one.
#[tokio::test]
async fn sqlite_trim_drops_finished_deliveries_only() {
    let place = Place::new();
    let retention = Retention {
        max_age: std::time::Duration::ZERO,
        ..Retention::default()
    };
    let store: Arc<dyn Roles> =
        Arc::new(SqliteStore::open(place.dir(), retention, mpsc::channel(100).0).expect("open"));
    put(&*store, endpoint("h", None, &["*"])).await;
    store.append(fixed("a", "x")).await.unwrap();
    store.append(fixed("b", "x")).await.unwrap();
    let now = statushub::webhooks::system_clock()() + 1000;
    let claimed = store.claim_due(now, 60_000, 10).await.unwrap();
    let done = claimed.iter().find(|d| d.account_id == "a").unwrap();
    let ok = Attempt {
        next: Next::Delivered,
        status_code: Some(200),
        ..attempt(Next::Delivered)
    };
    assert!(store.settle(done, ok).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await; // past a zero age
    store.trim().await.unwrap();
    let left: Vec<String> = deliveries(&*store, "h")
        .await
        .into_iter()
        .map(|d| d.account_id)
        .collect();
    assert_eq!(left, ["b"], "the pending one stays");
}
