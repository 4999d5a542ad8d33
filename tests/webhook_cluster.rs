//! Webhooks in a cluster: three nodes on one Redis, each running its own
//! dispatcher over the shared outbox. Every delivery goes out once (the
//! claim is one Lua script), in seq order per account, whichever node the
//! events were published on; a node killed mid-attempt leaves its claims
//! to the others.

mod common;
mod redis_support;
mod webhook_support;

use common::{API_KEY, Nodes, WAIT, wait_for};
use redis_support::{Prefix, SHARED_URL};
use serde_json::json;
use std::collections::HashMap;
use webhook_support::{Receiver, verify};

#[tokio::test]
async fn each_delivery_goes_out_once_from_one_of_the_nodes() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(3, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await;
    let receiver = Receiver::start().await;
    let (status, created) = nodes[0]
        .put(
            "/v1/webhooks/h",
            &json!({"url": receiver.url(), "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();

    let accounts = ["a", "b", "c", "d"];
    let mut published = 0;
    for round in 0..10 {
        for (i, account) in accounts.iter().enumerate() {
            let node = &nodes[(round + i) % 3];
            node.publish(account, "tick", json!({"round": round})).await;
            published += 1;
        }
    }
    wait_for("every delivery", WAIT, || async {
        receiver.delivered().len() >= published
    })
    .await;
    // Every node's dispatcher polls the same outbox; the store's own record
    // and the receiver agree: each delivered once.
    let (_, list) = nodes[1]
        .get(
            "/v1/webhooks/h/deliveries?status=delivered&limit=1000",
            Some(API_KEY),
        )
        .await;
    assert_eq!(list["deliveries"].as_array().unwrap().len(), published);
    let hits = receiver.delivered();
    assert_eq!(hits.len(), published, "each event delivered once");
    let mut last: HashMap<String, u64> = HashMap::new();
    for hit in &hits {
        assert!(verify(&secret, hit));
        let body = hit.json();
        let account = body["accountId"].as_str().unwrap().to_owned();
        let seq = body["seq"].as_u64().unwrap();
        let previous = last.insert(account.clone(), seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "{account}: seq order, no gap, no repeat");
    }
    nodes.stop().await;
}
