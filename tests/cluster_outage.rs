//! A Redis outage under a two-node cluster with clients connected to both:
//! publishes answer 503 (never a 2xx that is not stored), every client stays
//! connected, and once Redis is back (with its append-only file, so the
//! account keeps its epoch) every client has every stored event once, in
//! order, without reconnecting.

mod common;
mod redis_support;

use common::{Deliveries, Delivery, Nodes, TestServer, WAIT, error_code};
use redis_support::OwnRedis;
use serde_json::json;
use std::time::{Duration, Instant};

async fn publish_until_stored(node: &TestServer, event: &str) -> Delivery {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = node
            .post(
                "/v1/accounts/acme/events",
                &json!({ "event": event, "data": {} }),
            )
            .await;
        if status == 201 {
            let seq = body["seq"].as_u64().expect("seq");
            return (
                seq,
                body["id"].as_str().expect("id").to_owned(),
                event.to_owned(),
            );
        }
        assert_eq!((status, error_code(&body)), (503, "store_unavailable"));
        assert!(Instant::now() < deadline, "Redis did not come back: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

#[tokio::test]
async fn clients_on_both_nodes_stay_connected_through_a_redis_outage_and_miss_nothing() {
    let mut redis = OwnRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = redis.url();
    let nodes = Nodes::start(2, |_, config| config.redis_url = Some(url.clone())).await;
    let mut ws = nodes[0].ws_for("acme").await;
    let token = nodes[1].token("acme");
    let mut sse = nodes[1]
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    let mut sio = nodes[1]
        .socketio(json!({ "token": nodes[1].token("acme") }))
        .await
        .expect("socket.io connected");

    let mut acked = vec![
        publish_until_stored(&nodes[0], "before-0").await,
        publish_until_stored(&nodes[1], "before-1").await,
    ];

    // Every client is live (past its snapshot) before Redis goes away.
    assert_eq!(ws.deliveries(2).await, acked, "ws on node 0");
    assert_eq!(sse.deliveries(2).await, acked, "sse on node 1");
    assert_eq!(sio.deliveries(2).await, acked, "socket.io on node 1");

    redis.stop();
    for node in &nodes.nodes {
        let (status, body) = node
            .post(
                "/v1/accounts/acme/events",
                &json!({ "event": "lost", "data": {} }),
            )
            .await;
        assert_eq!((status, error_code(&body)), (503, "store_unavailable"));
    }
    for (i, transport) in [(0, "websocket"), (1, "sse"), (1, "socketio")] {
        assert_eq!(
            nodes[i].open_connections(transport).await,
            1,
            "node {i} keeps its {transport} client during the outage"
        );
    }

    redis.restart();
    acked.push(publish_until_stored(&nodes[1], "after-1").await);
    acked.push(publish_until_stored(&nodes[0], "after-0").await);
    acked.push(publish_until_stored(&nodes[1], "after-1b").await);

    // What is stored is the truth (a publish cut by the outage may have been
    // stored without its answer); every acknowledged event is part of it.
    let stored: Vec<Delivery> = nodes[0]
        .events("acme", 0)
        .await
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().expect("seq"),
                e["id"].as_str().expect("id").to_owned(),
                e["event"].as_str().expect("event").to_owned(),
            )
        })
        .collect();
    let seqs: Vec<u64> = stored.iter().map(|d| d.0).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    for ack in &acked {
        assert!(
            stored.contains(ack),
            "acknowledged {ack:?} is stored: {stored:?}"
        );
    }
    assert!(
        !stored.iter().any(|d| d.2 == "lost"),
        "a 503 stored nothing"
    );

    let rest = &stored[2..];
    assert_eq!(ws.deliveries(rest.len()).await, rest, "ws on node 0");
    assert_eq!(sse.deliveries(rest.len()).await, rest, "sse on node 1");
    assert_eq!(
        sio.deliveries(rest.len()).await,
        rest,
        "socket.io on node 1"
    );
    for (i, transport) in [(0, "websocket"), (1, "sse"), (1, "socketio")] {
        assert_eq!(
            nodes[i].open_connections(transport).await,
            1,
            "node {i} {transport}"
        );
    }
    nodes.stop().await;
}
