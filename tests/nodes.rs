//! The many-node fixture and the one client interface: several hub nodes in
//! one test, each client of each transport read as `(seq, id, event)`.
//! Nodes are independent for now (each its own data dir), so each numbers
//! its own events; cluster mode will run the same shape on one Redis.

mod common;

use common::{Deliveries, Delivery, Nodes, WAIT};
use serde_json::json;

#[tokio::test]
async fn every_transport_on_every_node_delivers_seq_id_and_event() {
    let nodes = Nodes::start(2, |i, config| {
        // A per-node tweak, as cluster tests will make them.
        config.limits.max_subscriptions = 4 + i;
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
    // Each node numbers its own events: node i gets i + 1 of them.
    let mut published: Vec<Vec<Delivery>> = Vec::new();
    for (i, node) in nodes.nodes.iter().enumerate() {
        let mut mine = Vec::new();
        for n in 0..=i {
            let receipt = node.publish("acme", &format!("e{n}"), json!({})).await;
            mine.push((
                receipt["seq"].as_u64().expect("seq"),
                receipt["id"].as_str().expect("id").to_owned(),
                format!("e{n}"),
            ));
        }
        published.push(mine);
    }
    for (i, expected) in published.iter().enumerate() {
        let got = tokio::time::timeout(WAIT, async {
            [
                sse[i].deliveries(expected.len()).await,
                ws[i].deliveries(expected.len()).await,
                sio[i].deliveries(expected.len()).await,
            ]
        })
        .await
        .expect("every transport delivers within the wait");
        for (transport, seen) in ["sse", "ws", "socket.io"].iter().zip(got) {
            assert_eq!(&seen, expected, "node {i}, {transport}");
        }
        assert_eq!(expected.last().map(|d| d.0), Some(i as u64 + 1));
    }
    nodes.stop().await;
}
