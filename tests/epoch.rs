//! The contract's epoch rule on every transport and on `events?since`: a
//! client resuming with the epoch it last saw gets exactly the events it
//! missed; with another epoch (a new data dir) it gets a `snapshot` with
//! `reset: true` and never events under seqs it already saw.
mod common;
mod redis_support;

use common::*;
use serde_json::{Value, json};

const STREAM: &str = "/v1/accounts/acme/stream";

/// Publishes `n` events to `acme`; returns the account's epoch.
async fn publish_ticks(server: &TestServer, n: u64) -> String {
    for i in 0..n {
        server.publish("acme", "tick", json!({ "i": i })).await;
    }
    let (status, snapshot) = server.get("/v1/accounts/acme/status", Some(API_KEY)).await;
    assert_eq!(status, 200, "{snapshot}");
    let epoch = snapshot["epoch"]
        .as_str()
        .expect("the snapshot carries epoch");
    assert!(!epoch.is_empty());
    epoch.to_owned()
}

#[tokio::test]
async fn ws_resets_on_another_epoch_and_replays_on_its_own() {
    let server = TestServer::start().await;
    let epoch = publish_ticks(&server, 5).await;
    let token = server.token("acme");

    let mut stale = server
        .ws(&format!("?token={token}&since=2&epoch=other"))
        .await;
    let frame = stale.next_json().await;
    assert_eq!(frame["type"], "snapshot", "{frame}");
    assert_eq!(frame["data"]["reset"], true);
    assert_eq!(frame["data"]["seq"], 5);
    assert_eq!(frame["data"]["epoch"], epoch.as_str());

    // The auth frame carries the epoch too.
    let mut by_frame = server.ws("").await;
    by_frame
        .send_json(json!({ "type": "auth", "token": token, "since": 2, "epoch": epoch }))
        .await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(by_frame.next_event().await["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [3, 4, 5], "exactly the missed events, no snapshot");

    // So does an admin's subscribe frame.
    let mut admin = server.ws(&format!("?token={}", server.admin_token())).await;
    assert_eq!(
        admin.next_json().await["type"],
        "snapshot",
        "its own account's"
    );
    admin
        .send_json(json!({ "type": "subscribe", "accountId": "acme", "since": 4, "epoch": "x" }))
        .await;
    let frame = admin.next_json().await;
    assert_eq!(
        (&frame["type"], &frame["data"]["reset"]),
        (&json!("snapshot"), &json!(true)),
        "{frame}"
    );

    // Nothing was replayed after the reset: the next frame is live seq 6.
    server.publish("acme", "tick", json!({ "i": 5 })).await;
    assert_eq!(stale.next_event().await["seq"], 6);
    assert_eq!(by_frame.next_event().await["seq"], 6);
    assert_eq!(admin.next_event().await["seq"], 6);

    for bad in ["?token={token}&epoch=a%20b", "?token={token}&epoch="] {
        let url = server.ws_url(&format!("/ws{}", bad.replace("{token}", &token)));
        let refused = tokio_tungstenite::connect_async(url).await.err();
        assert!(refused.is_some(), "{bad} is refused before the upgrade");
    }
    let mut ws = server.ws("").await;
    ws.send_json(json!({ "type": "auth", "token": token, "epoch": 7 }))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert!(
        frame["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("epoch must be"),
        "{frame}"
    );
}

#[tokio::test]
async fn sse_resets_on_another_epoch_and_replays_on_its_own() {
    let server = TestServer::start().await;
    let epoch = publish_ticks(&server, 5).await;
    let token = server.token("acme");

    let mut stale = server
        .sse(&format!("{STREAM}?token={token}&since=2&epoch=other"), &[])
        .await;
    let first = stale.next_event().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.json()["reset"], true);
    assert_eq!(first.json()["epoch"], epoch.as_str());

    // `Last-Event-ID` (a reconnecting EventSource) keeps the URL's epoch.
    let mut resumed = server
        .sse(
            &format!("{STREAM}?token={token}&epoch={epoch}"),
            &[("last-event-id", "3")],
        )
        .await;
    assert_eq!(resumed.next_event().await.id.as_deref(), Some("4"));
    assert_eq!(resumed.next_event().await.id.as_deref(), Some("5"));

    server.publish("acme", "tick", json!({ "i": 5 })).await;
    assert_eq!(stale.next_event().await.id.as_deref(), Some("6"));
    assert_eq!(resumed.next_event().await.id.as_deref(), Some("6"));

    let response = server
        .sse_request(&format!("{STREAM}?token={token}&since=2&epoch=%2F"), &[])
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("epoch must be")
    );
}

#[tokio::test]
async fn socketio_resets_on_another_epoch_and_replays_on_its_own() {
    let server = TestServer::start().await;
    let epoch = publish_ticks(&server, 5).await;
    let token = server.token("acme");

    let mut stale = server
        .socketio(json!({ "token": token, "since": 2, "epoch": "other" }))
        .await
        .expect("connects");
    let (name, snapshot, _) = stale.next_event().await.expect("a snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["reset"], true);
    assert_eq!(snapshot["epoch"], epoch.as_str());

    let mut resumed = server
        .socketio(json!({ "token": token, "since": 2, "epoch": epoch }))
        .await
        .expect("connects");
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let (name, _, meta) = resumed.next_event().await.expect("an event");
        assert_eq!(name, "tick");
        seqs.push(meta["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [3, 4, 5]);

    let mut admin = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("connects");
    let _own_snapshot = admin.next_event().await;
    let (ack, _) = admin
        .emit_with_ack(
            "subscribe",
            json!({ "accountId": "acme", "since": 1, "epoch": "other" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["epoch"], epoch.as_str());
    let (name, snapshot, _) = admin.next_event().await.expect("a snapshot");
    assert_eq!(
        (name.as_str(), &snapshot["reset"]),
        ("snapshot", &json!(true))
    );

    server.publish("acme", "tick", json!({ "i": 5 })).await;
    for client in [&mut stale, &mut resumed, &mut admin] {
        let (_, _, meta) = client.next_event().await.expect("the live event");
        assert_eq!(meta["seq"], 6, "no replay after the reset");
    }

    let refusal = server
        .socketio(json!({ "token": token, "epoch": "" }))
        .await
        .err()
        .expect("refused");
    assert!(
        refusal.starts_with("bad_request: epoch must be"),
        "{refusal}"
    );
}

#[tokio::test]
async fn events_since_resets_on_another_epoch_and_carries_the_epoch() {
    let server = TestServer::start().await;
    let epoch = publish_ticks(&server, 5).await;
    let page = |query: String| {
        let server = &server;
        async move {
            let path = format!("/v1/accounts/acme/events?{query}");
            server.get(&path, Some(API_KEY)).await
        }
    };
    let (status, body) = page(format!("since=2&epoch={epoch}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["reset"].clone(), body["epoch"].clone()),
        (json!(false), json!(epoch))
    );
    assert_eq!(body["events"].as_array().unwrap().len(), 3);

    let (status, body) = page("since=2&epoch=other".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reset"], true);
    assert_eq!(body["hasMore"], false);
    assert_eq!(body["events"], json!([]));
    assert_eq!(body["epoch"], epoch.as_str());

    let (status, body) = page("since=2".into()).await;
    assert_eq!(
        (status, body["reset"].clone()),
        (200, json!(false)),
        "without epoch, since is trusted"
    );

    let (status, body) = page("since=2&epoch=a.b".into()).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "bad_request");
}

/// A new data dir is a new epoch: a tab that saw seq 5 of the old one must
/// not take the new dir's seq 6 and 7 as "what it missed".
#[tokio::test]
async fn a_replaced_data_dir_resets_clients_of_the_old_one() {
    let old = TestServer::start().await;
    let old_epoch = publish_ticks(&old, 5).await;

    // The same dir restarted keeps its epoch: resuming replays the gap.
    let dir = old.stop().await;
    let config = test_config(dir.path());
    let restarted = TestServer::start_in(dir, config).await;
    assert_eq!(publish_ticks(&restarted, 1).await, old_epoch);
    let token = restarted.token("acme");
    let mut ws = restarted
        .ws(&format!("?token={token}&since=5&epoch={old_epoch}"))
        .await;
    assert_eq!(ws.next_event().await["seq"], 6);
    restarted.stop().await;

    let fresh = TestServer::start().await;
    let new_epoch = publish_ticks(&fresh, 7).await;
    assert_ne!(new_epoch, old_epoch);
    let token = fresh.token("acme");
    let mut ws = fresh
        .ws(&format!("?token={token}&since=5&epoch={old_epoch}"))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(
        frame["type"], "snapshot",
        "not seq 6 of another sequence: {frame}"
    );
    assert_eq!(frame["data"]["reset"], true);
    assert_eq!(frame["data"]["seq"], 7);
    assert_eq!(frame["data"]["epoch"], new_epoch.as_str());

    // Without an epoch, a `since` ahead of the new head is a reset as before.
    let mut ws = fresh.ws(&format!("?token={token}&since=9")).await;
    let frame = ws.next_json().await;
    assert_eq!(
        (&frame["type"], &frame["data"]["reset"]),
        (&json!("snapshot"), &json!(true))
    );
}

/// Redis restarted without persistence lost the account: a tab resuming with
/// the old epoch gets a reset, though the new sequence is past its `since`.
#[tokio::test]
async fn a_redis_that_lost_the_account_resets_clients_of_the_old_epoch() {
    let mut redis = redis_support::OwnRedis::start();
    let server = TestServer::start_with(|c| c.redis_url = Some(redis.url())).await;
    let old_epoch = publish_ticks(&server, 3).await;
    redis.restart();
    let body = json!({ "event": "tick", "data": {} });
    wait_for("publishes after the Redis restart", WAIT, || async {
        server.post("/v1/accounts/acme/events", &body).await.0 == 201
    })
    .await;
    let new_epoch = publish_ticks(&server, 4).await;
    assert_ne!(new_epoch, old_epoch, "the lost account starts a new epoch");
    let token = server.token("acme");
    let mut ws = server
        .ws(&format!("?token={token}&since=3&epoch={old_epoch}"))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(
        frame["type"], "snapshot",
        "not seq 4 of the new sequence: {frame}"
    );
    assert_eq!(frame["data"]["reset"], true);
    assert_eq!(frame["data"]["seq"], 5);
    assert_eq!(frame["data"]["epoch"], new_epoch.as_str());
}
