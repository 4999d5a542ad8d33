//! Cross-node fan-out on Redis: every node's feed carries every account's
//! events once, in seq order, even when pub/sub loses notifications
//! (caught up from the stream).

mod common;
mod redis_support;

use common::{Deliveries, Delivery, Nodes, WAIT};
use redis_support::{Prefix, SHARED_URL};
use serde_json::{Value, json};
use statushub::{
    config::Retention,
    event::Event,
    store::{Appended, Body, Draft, EventLog, RedisStore},
};
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;

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

async fn append(store: &dyn EventLog, n: u64) -> u64 {
    match store.append(draft("acme", json!({ "n": n }))).await {
        Ok(Appended::New(r)) => r.seq,
        other => panic!("expected a new event, got {other:?}"),
    }
}

/// Reads the feed until `last` arrives (or 5 s pass), returning the seqs.
async fn seqs_until(feed: &mut mpsc::Receiver<Arc<Event>>, last: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let read = async {
        while let Some(event) = feed.recv().await {
            assert_eq!(event.account_id, "acme");
            seqs.push(event.seq);
            if event.seq == last {
                return;
            }
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(5), read).await;
    assert!(done.is_ok(), "seq {last} never arrived; got {seqs:?}");
    seqs
}

#[tokio::test]
async fn another_node_gets_every_event_once_in_order_even_when_notifications_are_lost() {
    lost_notifications_are_caught_up(Prefix::fresh()).await;
}

#[tokio::test]
async fn on_a_redis_cluster_lost_notifications_are_caught_up_too() {
    lost_notifications_are_caught_up(Prefix::on_cluster()).await;
}

#[tokio::test]
async fn appends_through_three_nodes_reach_every_node_gap_free_and_in_order() {
    three_nodes_gap_free(Prefix::fresh()).await;
}

#[tokio::test]
async fn on_a_redis_cluster_three_nodes_stay_gap_free_and_in_order() {
    three_nodes_gap_free(Prefix::on_cluster()).await;
}

async fn lost_notifications_are_caught_up(prefix: Prefix) {
    let (a, mut a_feed) = prefix.open(Retention::default()).await;
    let (b, mut b_feed) = prefix.open(Retention::default()).await;

    assert_eq!(append(a.as_ref(), 1).await, 1);
    assert_eq!(seqs_until(&mut b_feed, 1).await, vec![1]);

    b.fanout().drop_next(3);
    for n in 2..=6 {
        append(a.as_ref(), n).await;
    }
    // 2, 3 and 4 were lost on B; 5's notification shows the gap.
    assert_eq!(seqs_until(&mut b_feed, 6).await, vec![2, 3, 4, 5, 6]);
    assert!(
        b.fanout()
            .catch_ups
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // Nothing arrives twice: the next event follows 6 directly, on both
    // nodes (A's feed has its own appends once, not also their notifications).
    append(a.as_ref(), 7).await;
    assert_eq!(seqs_until(&mut b_feed, 7).await, vec![7]);
    assert_eq!(
        seqs_until(&mut a_feed, 7).await,
        (1..=7).collect::<Vec<_>>()
    );
    assert!(
        b.fanout()
            .notifications
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 7
    );
}

async fn three_nodes_gap_free(prefix: Prefix) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(prefix.open(Retention::default()).await);
    }
    // A node's feed starts an account at the first event it sees of it
    // (a later gap it fills from the stream); start it on every node.
    assert_eq!(append(nodes[0].0.as_ref(), 0).await, 1);
    for (_, feed) in &mut nodes {
        assert_eq!(seqs_until(feed, 1).await, vec![1]);
    }
    let mut seqs = Vec::new();
    for n in 1..30u64 {
        let (store, _) = &nodes[(n * 7 % 3) as usize];
        seqs.push(append(store.as_ref(), n).await);
    }
    assert_eq!(seqs, (2..=30).collect::<Vec<_>>());
    for (_, feed) in &mut nodes {
        assert_eq!(seqs_until(feed, 30).await, (2..=30).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn clients_of_one_account_on_three_hub_nodes_see_the_same_events() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(3, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await;
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    let mut sio = Vec::new();
    for node in &nodes.nodes {
        let token = node.token("acme");
        sse.push(
            node.sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
                .await,
        );
        ws.push(node.ws_for("acme").await);
        sio.push(
            node.socketio(json!({ "token": token }))
                .await
                .expect("socket.io connected"),
        );
    }
    let mut published: Vec<Delivery> = Vec::new();
    for n in 0..12u64 {
        let node = &nodes[(rand::random::<u32>() % 3) as usize];
        let receipt = node
            .publish("acme", &format!("e{n}"), json!({ "n": n }))
            .await;
        published.push((
            receipt["seq"].as_u64().expect("seq"),
            receipt["id"].as_str().expect("id").to_owned(),
            format!("e{n}"),
        ));
    }
    let seqs: Vec<u64> = published.iter().map(|d| d.0).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>(), "seqs are gap-free");
    for i in 0..3 {
        let got = tokio::time::timeout(WAIT, async {
            [
                sse[i].deliveries(published.len()).await,
                ws[i].deliveries(published.len()).await,
                sio[i].deliveries(published.len()).await,
            ]
        })
        .await
        .expect("every transport on every node delivers within the wait");
        for (transport, seen) in ["sse", "ws", "socket.io"].iter().zip(got) {
            assert_eq!(seen, published, "node {i}, {transport}");
        }
        // Every node heard every event over pub/sub (its own ones too).
        let stats = nodes[i].stats().await;
        assert!(
            stats["fanout"]["notifications"].as_u64() >= Some(12),
            "node {i}: {stats}"
        );
        let metrics = reqwest::get(format!("{}/metrics", nodes[i].url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        assert!(metrics.contains("statushub_fanout_notifications_total"));
    }
    nodes.stop().await;
}

#[tokio::test]
async fn one_cluster_node_url_is_detected_and_every_slot_is_reached() {
    // Only the first node's URL: the store asks it (INFO cluster), finds a
    // cluster, and routes each account's keys to the master of their slot
    // (a plain connection would get MOVED for two thirds of them).
    let prefix = Prefix::on_cluster(); // its keys go, on every node, when it drops
    let mut settings = prefix.settings();
    settings.url = settings.url.split(',').next().expect("a node").to_owned();
    let (tx, mut feed) = mpsc::channel(100);
    let store = RedisStore::open(&settings, Retention::default(), tx)
        .await
        .expect("the cluster answers");
    for i in 0..30 {
        let account = format!("acct-{i}");
        match store.append(draft(&account, json!({ "i": i }))).await {
            Ok(Appended::New(r)) => assert_eq!(r.seq, 1, "{account}"),
            other => panic!("{account}: expected a new event, got {other:?}"),
        }
        let event = tokio::time::timeout(WAIT, feed.recv())
            .await
            .expect("fed")
            .expect("open");
        assert_eq!(event.account_id, account);
    }
}
