//! `kill -9` of the real binary with 100 webhook deliveries pending loses
//! none: after a restart on the same data dir every event reaches the
//! receiver once, in seq order.

mod process;
mod webhook_support;

use process::Hub;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use webhook_support::Receiver;

const KEY: &str = "kill-test-key";
const WAIT: Duration = Duration::from_secs(30);

fn args() -> Vec<&'static str> {
    vec![
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret",
        "kill-test-secret",
        "--api-keys",
        KEY,
    ]
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url).bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_100_pending_deliveries_loses_none() {
    let data = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start().await;
    // The receiver holds the first delivery and answers nothing: everything
    // else waits behind it (seq order), pending in the outbox.
    receiver.set_stuck(true);
    let http = reqwest::Client::new();
    let hub = tokio::task::block_in_place(|| Hub::serve(data.path(), &args()));
    call(
        &http,
        reqwest::Method::PUT,
        format!("{}/v1/webhooks/h", hub.url),
        Some(json!({"url": receiver.url(), "events": ["*"]})),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..100 {
        let receipt = call(
            &http,
            reqwest::Method::POST,
            format!("{}/v1/accounts/acme/events", hub.url),
            Some(json!({"event": "order.placed", "data": {"n": n}})),
        )
        .await;
        ids.push(receipt["id"].as_str().expect("id").to_owned());
    }
    until("the first attempt in flight", || {
        !receiver.hits().is_empty()
    })
    .await;
    let listed = call(
        &http,
        reqwest::Method::GET,
        format!(
            "{}/v1/webhooks/h/deliveries?status=pending&limit=1000",
            hub.url
        ),
        None,
    )
    .await;
    assert_eq!(listed["deliveries"].as_array().map(Vec::len), Some(100));

    // SIGKILL: no shutdown order, no checkpoint, an attempt in flight.
    tokio::task::block_in_place(|| drop(hub));
    receiver.set_stuck(false);
    let hub = tokio::task::block_in_place(|| Hub::serve(data.path(), &args()));
    until("all 100 delivered", || receiver.delivered().len() >= 100).await;
    let delivered: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|h| h.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered, ids, "every event once, in seq order");
    tokio::task::block_in_place(|| hub.stop());
}
