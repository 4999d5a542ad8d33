//! One fan-out for all three transports: the same events with the same seqs
//! in the same order on Socket.IO, WebSocket and SSE (own-account and admin
//! subscriptions alike), and a client that stops reading is cut off on its
//! own while everyone else keeps receiving everything — then resumes
//! exactly where it was cut off.

mod common;

use common::{
    SioClient, SseClient, TestServer, WAIT, WsClient, WsEnd, parse_sse, slow_tcp, wait_for,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    task::JoinHandle,
};

/// `(seq, id, event)` of every event a client received, up to and including `done`.
type Seen = Vec<(u64, String, String)>;

fn seen_of(envelope: &Value) -> (u64, String, String) {
    (
        envelope["seq"].as_u64().expect("seq"),
        envelope["id"].as_str().expect("id").to_owned(),
        envelope["event"].as_str().expect("event").to_owned(),
    )
}

fn collect_ws(mut ws: WsClient) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let frame = ws.next_json().await;
            if frame["type"] == "event" && frame["accountId"] == "acme" {
                seen.push(seen_of(&frame));
                if frame["event"] == "done" {
                    return seen;
                }
            }
        }
    })
}

fn collect_sse(mut sse: SseClient) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let event = sse.next_event().await;
            if event.event != "snapshot" {
                let envelope = event.json();
                assert_eq!(event.id, Some(envelope["seq"].to_string()), "id is the seq");
                assert_eq!(event.event, envelope["event"].as_str().unwrap_or_default());
                seen.push(seen_of(&envelope));
                if event.event == "done" {
                    return seen;
                }
            }
        }
    })
}

fn collect_sio(mut sio: SioClient) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let (name, _, meta) = sio.next_event().await.expect("still connected");
            if name != "snapshot" && meta["accountId"] == "acme" {
                let mut envelope = meta.clone();
                envelope["event"] = json!(name);
                seen.push(seen_of(&envelope));
                if name == "done" {
                    return seen;
                }
            }
        }
    })
}

#[tokio::test]
async fn every_transport_gets_the_same_events_with_the_same_seqs_in_the_same_order() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    let ws = server.ws_for("acme").await;
    let sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    let sio = server
        .socketio(json!({ "token": token }))
        .await
        .expect("socket.io");
    let mut admin_ws = server.ws(&format!("?token={}", server.admin_token())).await;
    assert_eq!(admin_ws.next_json().await["type"], "snapshot");
    admin_ws
        .send_json(json!({ "type": "subscribe", "accountId": "acme" }))
        .await;
    assert_eq!(admin_ws.next_json().await["data"]["accountId"], "acme");
    let mut admin_sio = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("admin socket.io");
    let (ack, _) = admin_sio
        .emit_with_ack("subscribe", json!({ "accountId": "acme" }))
        .await;
    assert_eq!(ack["ok"], true);

    let collectors = [
        collect_ws(ws),
        collect_sse(sse),
        collect_sio(sio),
        collect_ws(admin_ws),
        collect_sio(admin_sio),
    ];

    // Concurrent publishers interleave event kinds; the store decides the order.
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let url = server.url.clone();
            let http = server.http.clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    let (path, body) = if i % 3 == 0 {
                        (
                            "phone-tests",
                            json!({ "phoneNumberId": format!("p{p}"), "isActive": i % 2 == 0 }),
                        )
                    } else {
                        (
                            "events",
                            json!({ "event": format!("job.p{p}"), "data": { "i": i } }),
                        )
                    };
                    let response = http
                        .post(format!("{url}/v1/accounts/acme/{path}"))
                        .bearer_auth(common::API_KEY)
                        .json(&body)
                        .send()
                        .await
                        .expect("publish");
                    assert_eq!(response.status(), 201);
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    server.publish("acme", "done", json!({})).await;

    let stored: Seen = server.events("acme", 0).await.iter().map(seen_of).collect();
    assert_eq!(stored.len(), 61);
    assert!(
        stored.iter().zip(1..).all(|((seq, _, _), n)| *seq == n),
        "gapless seqs"
    );
    for collector in collectors {
        let seen = tokio::time::timeout(WAIT, collector)
            .await
            .expect("every client gets `done`")
            .expect("collector");
        assert_eq!(seen, stored, "same events, seqs and order as the store");
    }
}

/// Publishes rounds of large events until `condition` holds (at most `rounds`).
async fn publish_until(server: &TestServer, rounds: usize, condition: impl AsyncFn() -> bool) {
    let padding = "x".repeat(16 * 1024);
    for _ in 0..rounds {
        if condition().await {
            return;
        }
        let round: Vec<_> = (0..8)
            .map(|_| server.publish("acme", "bulk", json!({ "padding": padding })))
            .collect();
        futures::future::join_all(round).await;
    }
    panic!("the condition did not hold after {rounds} rounds");
}

#[tokio::test]
async fn clients_that_stop_reading_are_cut_off_while_the_others_keep_receiving() {
    let server = TestServer::start_with(|c| {
        c.limits.queue_size = 64;
        c.limits.publish_rate = 0;
    })
    .await;
    let token = server.token("acme");

    // One client per transport that will never read, on sockets with tiny receive buffers.
    let mut slow_ws = server
        .ws_over(slow_tcp(server.addr).await, &format!("/ws?token={token}"))
        .await;
    let mut slow_sio = server
        .socketio_over(slow_tcp(server.addr).await, json!({ "token": token }))
        .await
        .expect("slow socket.io");
    let mut slow_sse = slow_tcp(server.addr).await;
    // HTTP/1.0: the body is the raw event stream, ended by closing the connection.
    slow_sse
        .write_all(
            format!("GET /v1/accounts/acme/stream?token={token} HTTP/1.0\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    wait_for("the slow clients to be subscribed", WAIT, || async {
        server.stats().await["subscriptions"] == 3
    })
    .await;

    let fast = [
        collect_ws(server.ws_for("acme").await),
        collect_sse(
            server
                .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
                .await,
        ),
        collect_sio(
            server
                .socketio(json!({ "token": token }))
                .await
                .expect("socket.io"),
        ),
    ];

    publish_until(&server, 400, async || {
        let slow = &server.stats().await["connections"];
        ["websocket", "sse", "socketio"]
            .iter()
            .all(|t| slow[t]["slowConsumerDisconnects"] == 1)
    })
    .await;
    server.publish("acme", "done", json!({})).await;
    let stored: Seen = server.events("acme", 0).await.iter().map(seen_of).collect();
    for collector in fast {
        let seen = tokio::time::timeout(WAIT, collector)
            .await
            .expect("fast client got `done`")
            .unwrap();
        assert_eq!(seen, stored, "the fast clients got everything, in order");
    }

    // The slow WebSocket got a gapless prefix, then (if it could still be
    // told) the slow-consumer close code.
    let mut last_ws = 0;
    let (end, frames) = slow_ws.end().await;
    for frame in frames.iter().filter(|f| f["type"] == "event") {
        assert_eq!(frame["seq"], last_ws + 1, "gapless");
        last_ws += 1;
    }
    if let WsEnd::Closed { code, reason } = end {
        assert_eq!(code, 4009, "{reason}");
    }
    assert!(
        last_ws < stored.len() as u64,
        "it was cut off before the end"
    );

    let mut body = Vec::new();
    tokio::time::timeout(WAIT, slow_sse.read_to_end(&mut body))
        .await
        .expect("ends")
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    let events = parse_sse(body.split_once("\r\n\r\n").map_or("", |(_, b)| b));
    let goodbye = events.last().expect("events");
    assert_eq!(goodbye.event, "statushub:disconnect");
    assert_eq!(goodbye.json()["reason"], "slow_consumer");
    assert_eq!(
        goodbye.id, None,
        "the goodbye does not move the resume point"
    );
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id.as_ref()?.parse().ok())
        .collect();
    assert_eq!(ids.first(), Some(&0), "starts with the snapshot");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "gapless: {ids:?}");
    let last_sse = *ids.last().unwrap();

    // The slow Socket.IO client: a gapless prefix, then the notice and the disconnect.
    let mut last_sio = 0;
    let mut notice = None;
    while let Some((name, data, meta)) = slow_sio.next_event().await {
        if name == "statushub:disconnect" {
            notice = Some(data);
        } else if let Some(seq) = meta["seq"].as_u64() {
            assert_eq!(seq, last_sio + 1, "gapless");
            last_sio = seq;
        }
    }
    assert!(
        last_sio < stored.len() as u64,
        "it was cut off before the end"
    );
    assert_eq!(
        notice,
        Some(json!({ "reason": "slow_consumer", "reconnect": true }))
    );

    // All resume exactly where they were cut off.
    let mut ws = server.ws(&format!("?token={token}&since={last_ws}")).await;
    let mut sse = server
        .sse(
            &format!("/v1/accounts/acme/stream?token={token}"),
            &[("last-event-id", &last_sse.to_string())],
        )
        .await;
    for seq in last_ws + 1..=stored.len() as u64 {
        assert_eq!(ws.next_event().await["seq"], seq);
    }
    for seq in last_sse + 1..=stored.len() as u64 {
        assert_eq!(sse.next_event().await.id, Some(seq.to_string()));
    }
    let mut sio = server
        .socketio(json!({ "token": token, "since": last_sio }))
        .await
        .expect("socket.io");
    for seq in last_sio + 1..=stored.len() as u64 {
        assert_eq!(sio.next_event().await.expect("event").2["seq"], seq);
    }
}
