//! Running the hub: connection limits shared by every transport, the publish
//! rate limit, the origin allow-list, `/metrics` and `/v1/stats` read from
//! real state, and graceful shutdown that loses nothing acknowledged.

mod common;

use common::{API_KEY, TestServer, WAIT, WsEnd, error_code, wait_for};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// The HTTP refusal of an upgrade, as `(status, error code, Retry-After)`.
fn refusal(result: Result<common::WsClient, tungstenite::Error>) -> (u16, String, Option<String>) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON error body");
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                response.status().as_u16(),
                error_code(&body).to_owned(),
                retry,
            )
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a connection"),
    }
}

fn ws_request(server: &TestServer, account: &str) -> tungstenite::handshake::client::Request {
    server
        .ws_url(&format!("/ws?token={}", server.token(account)))
        .into_client_request()
        .unwrap()
}

#[tokio::test]
async fn the_connection_limit_is_shared_by_all_transports_and_others_keep_being_served() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let token = server.token("acme");
    let mut ws = server.ws_for("acme").await;
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    assert_eq!(sse.next_event().await.event, "snapshot");

    let (status, code, retry) = refusal(server.ws_request(ws_request(&server, "acme")).await);
    assert_eq!(
        (status, code.as_str(), retry.as_deref()),
        (503, "over_capacity", Some("1"))
    );
    let response = server
        .sse_request(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    assert_eq!(response.status(), 503);
    let refused = server
        .socketio(json!({ "token": token }))
        .await
        .err()
        .expect("refused");
    assert!(refused.starts_with("over_capacity:"), "{refused}");

    let receipt = server.publish("acme", "still.served", json!({})).await;
    assert_eq!(ws.next_event().await["id"], receipt["id"]);
    assert_eq!(sse.next_event().await.json()["id"], receipt["id"]);

    drop(sse);
    wait_for("the SSE slot to be released", WAIT, || async {
        server.open_connections("sse").await == 0
    })
    .await;
    let mut again = server.ws_for("acme").await;
    let receipt = server.publish("acme", "again", json!({})).await;
    assert_eq!(again.next_event().await["id"], receipt["id"]);
    let stats = server.stats().await;
    assert_eq!(stats["connectionsRefused"]["over_capacity"], 3);
}

#[tokio::test]
async fn the_per_ip_limit_answers_429() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 1).await;
    let _first = server.ws_for("acme").await;
    let (status, code, retry) = refusal(server.ws_request(ws_request(&server, "acme")).await);
    assert_eq!(
        (status, code.as_str(), retry.as_deref()),
        (429, "too_many_connections", Some("1"))
    );
    let response = server
        .sse_request(
            &format!("/v1/accounts/acme/stream?token={}", server.token("acme")),
            &[],
        )
        .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "too_many_connections");
}

#[tokio::test]
async fn publishes_are_rate_limited_per_api_key_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.limits.publish_rate = 1;
        c.limits.publish_burst = 2;
    })
    .await;
    let publish = |key: &'static str| {
        server
            .http
            .post(format!("{}/v1/accounts/acme/events", server.url))
            .bearer_auth(key)
            .json(&json!({ "event": "tick", "data": {} }))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(publish(API_KEY).await.unwrap().status(), 201);
    }
    let limited = publish(API_KEY).await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After is whole seconds, at least 1");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(error_code(&body), "rate_limited");
    assert_eq!(
        publish("second-key").await.unwrap().status(),
        201,
        "other keys are not throttled"
    );
    let stats = server.stats().await;
    assert_eq!(stats["publishRateLimited"], 1);
    assert_eq!(
        stats["events"]["tick"]["published"], 3,
        "nothing of the refused publish was stored"
    );
}

#[tokio::test]
async fn the_origin_allow_list_guards_websockets_socketio_and_cors() {
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let with_origin = |origin: &str| {
        let mut request = ws_request(&server, "acme");
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    let (status, code, _) = refusal(server.ws_request(with_origin("https://evil.example")).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let mut allowed = server
        .ws_request(with_origin("https://app.example"))
        .await
        .expect("allowed origin");
    assert_eq!(allowed.next_json().await["type"], "snapshot");

    let polling = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let evil = server
        .http
        .get(&polling)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let good = server
        .http
        .get(&polling)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let mut sio = server
        .ws_url("/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .unwrap();
    sio.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(refusal(server.ws_request(sio).await).0, 403);

    let cors = |origin: &'static str| {
        server
            .http
            .get(format!("{}/healthz", server.url))
            .header("origin", origin)
            .send()
    };
    let response = cors("https://app.example").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let response = cors("https://evil.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(server.stats().await["connectionsRefused"]["origin"], 3);
}

#[tokio::test]
async fn without_a_list_only_the_same_origin_may_open_a_websocket() {
    let server = TestServer::start().await;
    let mut same = ws_request(&server, "acme");
    same.headers_mut()
        .insert("origin", format!("http://{}", server.addr).parse().unwrap());
    let mut ws = server.ws_request(same).await.expect("same origin");
    assert_eq!(ws.next_json().await["type"], "snapshot");
    let mut other = ws_request(&server, "acme");
    other
        .headers_mut()
        .insert("origin", "http://localhost:1".parse().unwrap());
    assert_eq!(refusal(server.ws_request(other).await).0, 403);
}

#[tokio::test]
async fn metrics_and_stats_report_the_same_real_figures() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    let mut ws = server.ws_for("acme").await;
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    assert_eq!(sse.next_event().await.event, "snapshot");
    let mut sio = server
        .socketio(json!({ "token": token }))
        .await
        .expect("socket.io");
    assert_eq!(sio.next_event().await.expect("snapshot").0, "snapshot");

    for phone in ["p1", "p2", "p3"] {
        server.phone_test("acme", phone, true).await;
    }
    server.publish("acme", "deploy", json!({})).await;
    for _ in 0..4 {
        ws.next_event().await;
        sse.next_event().await;
        sio.next_event().await.expect("event");
    }

    let stats = server.stats().await;
    for transport in ["websocket", "sse", "socketio"] {
        assert_eq!(
            stats["connections"][transport]["open"], 1,
            "{transport}: {stats}"
        );
        assert_eq!(stats["connections"][transport]["opened"], 1, "{transport}");
    }
    assert_eq!(stats["subscriptions"], 3);
    assert_eq!(
        stats["events"]["phone_status_changed"],
        json!({ "published": 3, "delivered": 9 })
    );
    assert_eq!(
        stats["events"]["deploy"],
        json!({ "published": 1, "delivered": 3 })
    );
    assert_eq!(stats["publishLatency"]["count"], 4);
    assert_eq!(stats["storeErrors"], 0);

    let response = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for line in [
        "statushub_connections{transport=\"websocket\"} 1",
        "statushub_connections{transport=\"sse\"} 1",
        "statushub_connections{transport=\"socketio\"} 1",
        "statushub_subscriptions 3",
        "statushub_events_published_total{event=\"phone_status_changed\"} 3",
        "statushub_events_delivered_total{event=\"phone_status_changed\"} 9",
        "statushub_events_delivered_total{event=\"deploy\"} 3",
        "statushub_publish_duration_seconds_count 4",
        "statushub_publish_duration_seconds_bucket{le=\"+Inf\"} 4",
        "statushub_slow_consumer_disconnects_total{transport=\"websocket\"} 0",
        "statushub_store_errors_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    ws.stream.close(None).await.unwrap();
    wait_for(
        "the closed WebSocket to leave the figures",
        WAIT,
        || async {
            let stats = server.stats().await;
            stats["connections"]["websocket"]["open"] == 0 && stats["subscriptions"] == 2
        },
    )
    .await;
    assert_eq!(
        server.stats().await["connections"]["websocket"]["closed"]["client_closed"],
        1
    );
}

/// Reads every frame of a WebSocket until it ends, in the background.
fn drain_ws(mut ws: common::WsClient) -> tokio::task::JoinHandle<(WsEnd, Vec<Value>)> {
    tokio::spawn(async move { ws.end().await })
}

fn last_seq(frames: &[Value]) -> u64 {
    frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["seq"].as_u64().unwrap())
        .fold(0, |last, seq| {
            assert_eq!(seq, last + 1, "gapless");
            seq
        })
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect_and_loses_nothing_acknowledged() {
    let server = TestServer::start_with(|c| c.limits.publish_rate = 0).await;
    let token = server.token("acme");
    let ws = drain_ws(server.ws_for("acme").await);
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    let sse = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = sse.next().await {
            events.push(event);
        }
        events
    });
    let mut sio = server
        .socketio(json!({ "token": token }))
        .await
        .expect("socket.io");
    let sio = tokio::spawn(async move {
        let mut seqs = Vec::new();
        let mut notice = None;
        while let Some((name, data, meta)) = sio.next_event().await {
            if name == "statushub:disconnect" {
                notice = Some(data);
            } else if let Some(seq) = meta["seq"].as_u64() {
                seqs.push(seq);
            }
        }
        (seqs, notice)
    });

    // A backend keeps publishing through the shutdown; every 201 is recorded.
    let acknowledged = Arc::new(Mutex::new(Vec::<Value>::new()));
    let publisher = {
        let (url, http, acknowledged) = (
            server.url.clone(),
            server.http.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            for i in 0.. {
                let sent = http
                    .post(format!("{url}/v1/accounts/acme/events"))
                    .bearer_auth(API_KEY)
                    .json(&json!({ "event": "work", "data": { "i": i } }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let receipt: Value = r.json().await.unwrap();
                        acknowledged.lock().unwrap().push(receipt);
                    }
                    _ => return,
                }
            }
        })
    };
    wait_for("some publishes", WAIT, || async {
        acknowledged.lock().unwrap().len() >= 20
    })
    .await;
    let config = common::test_config(server.data_dir.path());
    let data_dir = server.stop().await;
    tokio::time::timeout(WAIT, publisher)
        .await
        .expect("publisher stops")
        .unwrap();

    // The store was flushed and closed: no WAL left behind.
    let wal = data_dir.path().join("statushub.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL was checkpointed on shutdown"
    );

    let (end, frames) = tokio::time::timeout(WAIT, ws).await.unwrap().unwrap();
    assert_eq!(
        end,
        WsEnd::Closed {
            code: 1012,
            reason: "service restart: reconnect with since".into()
        }
    );
    let last_ws = last_seq(&frames);
    let sse_events = tokio::time::timeout(WAIT, sse).await.unwrap().unwrap();
    let goodbye = sse_events.last().expect("events");
    assert_eq!(goodbye.event, "statushub:disconnect");
    assert_eq!(goodbye.json()["reason"], "shutdown");
    let last_sse: u64 = sse_events
        .iter()
        .rev()
        .find_map(|e| e.id.as_ref()?.parse().ok())
        .unwrap();
    let (sio_seqs, notice) = tokio::time::timeout(WAIT, sio)
        .await
        .expect("socket.io disconnected")
        .unwrap();
    assert!(
        sio_seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless socket.io events"
    );
    assert_eq!(
        notice,
        Some(json!({ "reason": "shutdown", "reconnect": true }))
    );

    // After a restart every acknowledged publish is there, with its seq and id.
    let server = TestServer::start_in(data_dir, config).await;
    let stored = server.events("acme", 0).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    for receipt in &acknowledged {
        let seq = receipt["seq"].as_u64().unwrap() as usize;
        assert_eq!(
            stored[seq - 1]["id"],
            receipt["id"],
            "acknowledged seq {seq} survived"
        );
    }
    let head = stored.len() as u64;
    assert!(head >= acknowledged.len() as u64);

    // Each client resumes from what it saw: the rest, once, in order.
    let mut ws = server.ws(&format!("?token={token}&since={last_ws}")).await;
    for seq in last_ws + 1..=head {
        assert_eq!(ws.next_event().await["seq"], seq);
    }
    let mut sse = server
        .sse(
            &format!("/v1/accounts/acme/stream?token={token}"),
            &[("last-event-id", &last_sse.to_string())],
        )
        .await;
    for seq in last_sse + 1..=head {
        assert_eq!(sse.next_event().await.id, Some(seq.to_string()));
    }
    let after = server.publish("acme", "after.restart", json!({})).await;
    assert_eq!(
        ws.next_event().await["id"],
        after["id"],
        "nothing replayed twice"
    );
    assert_eq!(sse.next_event().await.json()["id"], after["id"]);
}

#[tokio::test]
async fn a_server_with_clients_that_never_read_still_stops_and_closes_its_store() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    let _ws = server.ws_for("acme").await;
    let _sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    let _sio = server
        .socketio(json!({ "token": token }))
        .await
        .expect("socket.io");
    // A refused Socket.IO connect leaves its engine session open (socketioxide).
    let refused = server.socketio(json!({ "token": "garbage" })).await;
    assert!(refused.is_err());
    server.publish("acme", "x", json!({})).await;
    let data_dir = server.stop().await;
    let wal = data_dir.path().join("statushub.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the store closed (WAL checkpointed) although no client said goodbye"
    );
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    let mut ws = server.ws_for("acme").await;
    ws.stream.close(None).await.unwrap();
    let next = tokio::time::timeout(WAIT, ws.stream.next()).await.unwrap();
    assert!(
        matches!(next, Some(Ok(tungstenite::Message::Close(_)))),
        "{next:?}"
    );
}
