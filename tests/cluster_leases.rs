//! Heartbeat monitors in a cluster: three real nodes on one real Redis, one
//! real HTTP endpoint on loopback counting the checks it receives. Each
//! monitor is checked by the one node holding its lease; when that node
//! dies (its task aborted: nothing released, nothing shut down) another
//! takes over once the lease runs out, continuing from the saved state.

mod common;
mod redis_support;

use axum::{Router, extract::State, http::StatusCode};
use common::{API_KEY, Nodes, TestServer, WAIT, wait_for};
use redis_support::{Prefix, SHARED_URL};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

/// The monitor's interval.
const INTERVAL: Duration = Duration::from_millis(500);

/// An endpoint that records when each request arrived and answers 200, or
/// 500 once told to fail.
#[derive(Clone, Default)]
struct Endpoint {
    at: Arc<Mutex<Vec<Instant>>>,
    failing: Arc<AtomicBool>,
}

impl Endpoint {
    async fn start() -> (Endpoint, String) {
        let endpoint = Endpoint::default();
        let app = Router::new()
            .route("/health", axum::routing::get(hit))
            .with_state(endpoint.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/health", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (endpoint, url)
    }

    fn times(&self) -> Vec<Instant> {
        self.at.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.at.lock().unwrap().len()
    }
}

async fn hit(State(endpoint): State<Endpoint>) -> StatusCode {
    endpoint.at.lock().unwrap().push(Instant::now());
    if endpoint.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn start_cluster(prefix: &Prefix) -> Nodes {
    Nodes::start(3, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await
}

/// `node` in `/v1/stats`.
async fn node_stats(node: &TestServer) -> Value {
    node.stats().await["node"].clone()
}

async fn leases_held(node: &TestServer) -> u64 {
    node_stats(node).await["monitorLeases"]["held"]
        .as_u64()
        .unwrap_or(0)
}

/// The one node holding a lease, once exactly one does.
async fn holder(nodes: &[TestServer]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut holders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if leases_held(node).await == 1 {
                holders.push(i);
            }
        }
        if let [one] = holders[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for exactly one node to hold the lease (holders: {holders:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn failures(node: &TestServer) -> u64 {
    let (status, body) = node
        .get("/v1/accounts/acme/monitors/web", Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    body["consecutiveFailures"]
        .as_u64()
        .expect("consecutiveFailures")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_check_a_monitor_once_per_interval_and_take_over_when_its_holder_dies() {
    let prefix = Prefix::fresh();
    let (endpoint, url) = Endpoint::start().await;
    let mut nodes = start_cluster(&prefix).await;
    for node in &nodes.nodes {
        let node = node_stats(node).await;
        assert_eq!(node["store"], "redis", "{node}");
        assert!(
            node["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("node-"))
        );
    }
    let ids: std::collections::HashSet<String> = {
        let mut ids = std::collections::HashSet::new();
        for node in &nodes.nodes {
            ids.insert(
                node_stats(node).await["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        ids
    };
    assert_eq!(ids.len(), 3, "every node has its own id");
    wait_for("a measured Redis round trip", WAIT, || async {
        let node = node_stats(&nodes[0]).await;
        node["redisReachable"] == true && node["redisRoundTripMs"].as_f64().is_some()
    })
    .await;

    let (status, body) = nodes[0]
        .put(
            "/v1/accounts/acme/monitors/web",
            &json!({ "url": url, "intervalMs": INTERVAL.as_millis() as u64, "timeoutMs": 200,
                     "maxRetries": 20, "backoffMultiplier": 1.0 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Every node learns of the monitor (the others adopt it from Redis).
    for node in &nodes.nodes {
        wait_for("every node to know the monitor", WAIT, || async {
            node.stats().await["monitors"]["monitors"] == 1
        })
        .await;
    }
    holder(&nodes.nodes).await;

    // Over a window of 12 intervals: about 12 checks, not 36.
    let window = INTERVAL * 12;
    let before = endpoint.count();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let checks = endpoint.count() - before;
    let intervals = started.elapsed().as_secs_f64() / INTERVAL.as_secs_f64();
    assert!(
        (checks as f64) <= intervals * 1.5 + 1.0,
        "{checks} checks in {intervals:.1} intervals: more than one node checks"
    );
    assert!(
        (checks as f64) >= intervals / 2.0,
        "{checks} checks in {intervals:.1} intervals: the monitor is not checked"
    );
    let mut held = 0;
    for node in &nodes.nodes {
        held += leases_held(node).await;
    }
    assert_eq!(held, 1, "one lease, held by one node");

    // The endpoint fails; the holder counts failures, saved in Redis.
    endpoint.failing.store(true, Ordering::SeqCst);
    let watcher = (holder(&nodes.nodes).await + 1) % 3;
    wait_for("five consecutive failures", WAIT, || async {
        failures(&nodes[watcher]).await >= 5
    })
    .await;

    // The holder dies without giving anything back.
    let dead = holder(&nodes.nodes).await;
    let failures_before = failures(&nodes[watcher]).await;
    let killed_at = Instant::now();
    nodes.nodes.remove(dead).kill().await;
    let survivors = &nodes.nodes;
    let new_holder = holder(survivors).await;
    let stats = node_stats(&survivors[new_holder]).await;
    assert!(
        stats["monitorLeases"]["acquired"].as_u64() >= Some(1),
        "{stats}"
    );

    // Taken over within two intervals of the dead node's last check (plus
    // slack for a loaded machine): the lease outlives that check by at most
    // 1.1 intervals plus a quarter, and the others ask every half interval.
    wait_for("checks by the new holder", WAIT, || async {
        endpoint
            .times()
            .iter()
            .filter(|t| **t > killed_at + Duration::from_millis(50))
            .count()
            >= 2
    })
    .await;
    let times = endpoint.times();
    let last_before = times
        .iter()
        .filter(|t| **t <= killed_at)
        .max()
        .copied()
        .expect("checks before the kill");
    let first_after = times
        .iter()
        .filter(|t| **t > killed_at + Duration::from_millis(50))
        .min()
        .copied()
        .expect("checks after the kill");
    let gap = first_after - last_before;
    assert!(
        gap <= INTERVAL * 2 + Duration::from_millis(500),
        "taken over {gap:?} after the last check (interval {INTERVAL:?})"
    );

    // The failure count carried over: read it, then the checks made since
    // the kill. Had the new holder started from zero, the count could not
    // exceed the checks since the kill.
    let failures_now = failures(&survivors[new_holder]).await;
    let since_kill = endpoint.times().iter().filter(|t| **t > killed_at).count() as u64;
    assert!(
        failures_now > since_kill && failures_now >= failures_before,
        "failures {failures_now} (before the kill {failures_before}), {since_kill} checks since"
    );
    nodes.stop().await;
}

#[tokio::test]
async fn a_single_node_holds_every_monitor_and_says_so() {
    let (endpoint, url) = Endpoint::start().await;
    let server = TestServer::start().await;
    let node = node_stats(&server).await;
    assert_eq!(node["store"], "sqlite", "{node}");
    assert_eq!(node["redisRoundTripMs"], Value::Null);
    assert_eq!(node["redisReachable"], Value::Null);
    for id in ["a", "b"] {
        let (status, body) = server
            .put(
                &format!("/v1/accounts/acme/monitors/{id}"),
                &json!({ "url": url, "intervalMs": 200, "timeoutMs": 100,
                         "maxRetries": 0, "backoffMultiplier": 1.0 }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    wait_for("both monitors checked", WAIT, || async {
        endpoint.count() >= 4 && leases_held(&server).await == 2
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("statushub_node_info{node=\"node-"),
        "{metrics}"
    );
    assert!(
        metrics.contains("statushub_monitor_leases_held 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("statushub_redis_up"),
        "no Redis figures on SQLite"
    );
    // A delete gives the lease back.
    let (status, _) = server.delete("/v1/accounts/acme/monitors/a").await;
    assert_eq!(status, 204);
    assert_eq!(leases_held(&server).await, 1);
    server.stop().await;
}
