//! Limits and idempotency across nodes: two real nodes on one real Redis.
//! The per-key publish rate limit is one bucket for the whole cluster, and
//! the same `Idempotency-Key` sent to both nodes at once publishes once.

mod common;
mod redis_support;

use common::{API_KEY, Nodes};
use redis_support::{Prefix, SHARED_URL};
use serde_json::{Value, json};

async fn publish(node: &common::TestServer, key: Option<&str>, n: u64) -> (u16, Value) {
    let mut request = node
        .http
        .post(format!("{}/v1/accounts/acme/events", node.url))
        .bearer_auth(API_KEY)
        .json(&json!({ "event": "tick", "data": { "n": n } }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("publish");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_publish_rate_limit_of_a_key_holds_across_nodes() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(2, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
        // One publish a second after a burst of 4 (a long refill, so the
        // test's own pace cannot refill a token).
        config.limits.publish_rate = 1;
        config.limits.publish_burst = 4;
    })
    .await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for n in 0..8 {
        statuses.push(publish(&nodes[(n % 2) as usize], None, n).await.0);
    }
    // Per node, each would have let 4 through (8 in all); one bucket lets 4
    // through, plus one per second the test took (a refill).
    let refills = started.elapsed().as_secs() as usize;
    assert_eq!(statuses[..4], [201, 201, 201, 201], "{statuses:?}");
    let passed = statuses.iter().filter(|s| **s == 201).count();
    assert!(
        passed <= 4 + refills && statuses.iter().all(|s| *s == 201 || *s == 429),
        "the burst is the cluster's, not each node's: {statuses:?}"
    );
    let (status, body) = publish(&nodes[1], None, 9).await;
    if status == 429 {
        assert_eq!(common::error_code(&body), "rate_limited");
    }
    nodes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_sent_to_two_nodes_at_once_publishes_once() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(2, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await;
    for round in 0..10u64 {
        let key = format!("order-{round}");
        let (a, b) = tokio::join!(
            publish(&nodes[0], Some(&key), round),
            publish(&nodes[1], Some(&key), round)
        );
        assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
        assert_eq!(a.1["seq"], b.1["seq"], "one event, one seq: {a:?} {b:?}");
        assert_eq!(a.1["id"], b.1["id"], "{a:?} {b:?}");
        assert_eq!(a.1["seq"], round + 1, "no second event took a seq");
    }
    let events = nodes[0].events("acme", 0).await;
    assert_eq!(events.len(), 10, "ten keys, ten events");
    nodes.stop().await;
}
