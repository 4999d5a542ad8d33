//! Presence against real servers: `GET /v1/accounts/{account}/presence`
//! lists every live connection of the account (id, user, transport, node,
//! connected since, last seq) on one node and across nodes sharing one
//! Redis; a node that stops withdraws its entries, and a node that is
//! killed loses them when they expire.

mod common;
mod process;
mod redis_support;

use common::{API_KEY, Nodes, SECRET, TestServer, WAIT, error_code, wait_for};
use redis_support::{Prefix, SHARED_URL};
use serde_json::{Value, json};
use std::time::Duration;

async fn presence(server: &TestServer, account: &str) -> Value {
    let (status, body) = server
        .get(&format!("/v1/accounts/{account}/presence"), Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn connections(body: &Value) -> Vec<Value> {
    body["connections"].as_array().cloned().unwrap_or_default()
}

/// The (transport, user, lastSeq) of each connection, sorted.
fn summary(body: &Value) -> Vec<(String, Value, u64)> {
    let mut list: Vec<_> = connections(body)
        .iter()
        .map(|c| {
            (
                c["transport"].as_str().unwrap_or_default().to_owned(),
                c["user"].clone(),
                c["lastSeq"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    list.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
    list
}

#[tokio::test]
async fn a_single_node_lists_each_connection_with_its_user_transport_and_seq() {
    let server = TestServer::start().await;
    server.phone_test("acme", "p1", true).await;
    let other_user = server
        .jwt
        .mint("acme", "user-2", None, Duration::from_secs(3600));
    let mut sio = server
        .socketio(json!({ "token": server.token("acme") }))
        .await
        .expect("socket.io");
    let mut ws = server.ws("").await;
    ws.send_json(json!({ "type": "auth", "token": other_user,
        "filter": [{ "events": ["order.*"] }] }))
        .await;
    let sse = server
        .sse(
            "/v1/accounts/acme/stream",
            &[("authorization", &format!("Bearer {API_KEY}"))],
        )
        .await;
    let _elsewhere = server.ws_for("other").await;
    assert_eq!(sio.next_event().await.expect("snapshot").0, "snapshot");
    assert_eq!(ws.next_json().await["type"], "snapshot");

    server.publish("acme", "order.paid", json!({})).await;
    server.publish("acme", "not.for.ws", json!({})).await;
    let expected = vec![
        ("socketio".to_owned(), json!("user-1"), 3),
        ("sse".to_owned(), Value::Null, 3),
        ("websocket".to_owned(), json!("user-2"), 3),
    ];
    let expected = &expected;
    wait_for("every tab at seq 3", WAIT, || async {
        summary(&presence(&server, "acme").await) == *expected
    })
    .await;
    let last = presence(&server, "acme").await;
    assert_eq!(last["accountId"], "acme");
    for c in connections(&last) {
        assert_eq!(c["node"], last["node"], "{c}");
        assert_eq!(c["accountId"], "acme");
        let since = c["connectedSince"].as_str().unwrap_or_default();
        assert!(statushub::event::parse_rfc3339(since).is_some(), "{c}");
        assert!(!c["connectionId"].as_str().unwrap_or_default().is_empty());
        let filtered = c["transport"] == "websocket";
        assert_eq!(
            c["filtered"], filtered,
            "a filtered tab skipped seq 3 and is still at 3: {c}"
        );
    }
    assert_eq!(connections(&presence(&server, "other").await).len(), 1);

    // The account's own token may read it; another account's may not.
    let (status, _) = server
        .get("/v1/accounts/acme/presence", Some(&server.token("acme")))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .get("/v1/accounts/acme/presence", Some(&server.token("other")))
        .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let (status, body) = server.get("/v1/accounts/acme/presence", None).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, body) = server
        .get("/v1/accounts/a%20b/presence", Some(API_KEY))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));

    drop(ws);
    wait_for("a closed tab leaves", WAIT, || async {
        let left = summary(&presence(&server, "acme").await);
        left.len() == 2
            && left
                .iter()
                .all(|(transport, _, _)| transport != "websocket")
    })
    .await;
    drop(sse);
}

fn cluster(prefix: &Prefix, ttl: Duration) -> impl Fn(usize, &mut statushub::config::Config) + '_ {
    move |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
        config.limits.presence_ttl = ttl;
    }
}

#[tokio::test]
async fn every_node_lists_the_connections_of_every_node_until_one_stops() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(2, cluster(&prefix, Duration::from_secs(30))).await;
    let _a = nodes[0].ws_for("acme").await;
    let _b = nodes[1]
        .socketio(json!({ "token": nodes[1].token("acme") }))
        .await
        .expect("socket.io on node 1");
    nodes[0].publish("acme", "x", json!({})).await;
    for node in &nodes.nodes {
        wait_for("both nodes' tabs, at seq 1", WAIT, || async {
            let body = presence(node, "acme").await;
            let list = connections(&body);
            let names: std::collections::HashSet<_> =
                list.iter().map(|c| c["node"].to_string()).collect();
            list.len() == 2 && names.len() == 2 && list.iter().all(|c| c["lastSeq"] == 1)
        })
        .await;
    }
    let mut nodes = nodes.nodes.into_iter();
    let (first, second) = (nodes.next().expect("node 0"), nodes.next().expect("node 1"));
    second.stop().await;
    wait_for("a stopped node's tabs leave at once", WAIT, || async {
        let list = connections(&presence(&first, "acme").await);
        list.len() == 1 && list[0]["transport"] == "websocket"
    })
    .await;
    first.stop().await;
}

#[tokio::test]
async fn a_killed_nodes_connections_expire() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(1, cluster(&prefix, Duration::from_secs(1))).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let killed = process::Hub::serve(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
            "--api-keys",
            API_KEY,
            "--redis-url",
            SHARED_URL,
            "--redis-prefix",
            &prefix.name,
            "--presence-ttl",
            "1s",
        ],
    );
    let url = format!(
        "{}/ws?token={}",
        killed.url.replacen("http://", "ws://", 1),
        nodes[0].token("acme")
    );
    let (_tab, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a tab on the doomed node");
    wait_for("the other node's tab is listed", WAIT, || async {
        connections(&presence(&nodes[0], "acme").await).len() == 1
    })
    .await;
    drop(killed); // SIGKILL: no goodbye, no withdrawal.
    wait_for("its entries expire", WAIT, || async {
        connections(&presence(&nodes[0], "acme").await).is_empty()
    })
    .await;
    nodes.stop().await;
}
