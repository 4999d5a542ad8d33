//! The raw WebSocket transport at `/ws` against a real server: frames exactly
//! as the contract shows, resume, authentication, bad and oversized frames,
//! admin subscriptions, the server's heartbeat.

mod common;

use common::{API_KEY, TestServer, WAIT, WsEnd, wait_for};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

fn assert_envelope(frame: &Value, receipt: &Value, event: &str) {
    assert_eq!(frame["type"], "event", "{frame}");
    assert_eq!(frame["event"], event, "{frame}");
    for field in ["accountId", "seq", "id", "publishedAt"] {
        assert_eq!(
            frame[field], receipt[field],
            "{field} of {frame} vs receipt {receipt}"
        );
    }
    assert!(frame["data"].is_object(), "data is an object: {frame}");
}

#[tokio::test]
async fn token_in_query_gets_the_snapshot_then_every_event_in_order() {
    let server = TestServer::start().await;
    let mut ws = server.ws(&format!("?token={}", server.token("acme"))).await;
    let snapshot = ws.next_json().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["data"]["accountId"], "acme");
    assert_eq!(snapshot["data"]["seq"], 0);

    let phone = server.phone_test("acme", "phone-1", true).await;
    let custom = server
        .publish("acme", "deploy.finished", json!({ "n": 1 }))
        .await;
    let frame = ws.next_event().await;
    assert_envelope(&frame, &phone, "phone_status_changed");
    assert_eq!(frame["data"]["phoneNumberId"], "phone-1");
    let frame = ws.next_event().await;
    assert_envelope(&frame, &custom, "deploy.finished");
    assert_eq!(frame["data"], json!({ "n": 1 }));
    assert_eq!(frame["seq"], 2);
}

#[tokio::test]
async fn bearer_header_and_auth_frame_both_authenticate() {
    let server = TestServer::start().await;
    let mut request = server.ws_url("/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token("acme")).parse().unwrap(),
    );
    let mut by_header = server.ws_request(request).await.expect("upgrade");
    assert_eq!(by_header.next_json().await["type"], "snapshot");

    let receipt = server.phone_test("acme", "p1", true).await;
    server.phone_test("acme", "p2", false).await;
    // The auth frame carries `since`: only what came after seq 1 is replayed.
    let mut by_frame = server.ws("").await;
    by_frame
        .send_json(json!({ "type": "auth", "token": server.token("acme"), "since": 1 }))
        .await;
    let frame = by_frame.next_event().await;
    assert_eq!(frame["seq"], 2, "{frame}");
    assert_eq!(by_header.next_event().await["id"], receipt["id"]);
}

#[tokio::test]
async fn resume_with_since_replays_the_gap_exactly_once_then_goes_live() {
    let server = TestServer::start().await;
    for i in 0..5 {
        server.publish("acme", "tick", json!({ "i": i })).await;
    }
    let mut ws = server
        .ws(&format!("?token={}&since=2", server.token("acme")))
        .await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(ws.next_event().await["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [3, 4, 5], "the gap, in order, without a snapshot");
    server.publish("acme", "tick", json!({ "i": 5 })).await;
    assert_eq!(ws.next_event().await["seq"], 6);
    ws.send_json(json!({ "type": "ping" })).await;
    assert_eq!(
        ws.next_json().await,
        json!({ "type": "pong" }),
        "nothing was sent twice before the pong"
    );
}

#[tokio::test]
async fn a_gap_older_than_retention_gets_a_reset_snapshot() {
    let server = TestServer::start_with(|c| c.retention.max_events = 3).await;
    for i in 0..6 {
        server.publish("acme", "tick", json!({ "i": i })).await;
    }
    let mut ws = server
        .ws(&format!("?token={}&since=1", server.token("acme")))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(frame["type"], "snapshot", "{frame}");
    assert_eq!(frame["data"]["reset"], true);
    assert_eq!(frame["data"]["seq"], 6);
}

#[tokio::test]
async fn bad_tokens_get_an_unauthorized_error_and_close_4001() {
    let server = TestServer::start().await;
    let expired = server.jwt.mint("acme", "u", None, Duration::from_secs(1));
    let forged = statushub::auth::Jwt::new("another-secret").mint(
        "acme",
        "u",
        None,
        Duration::from_secs(60),
    );
    for token in ["garbage", forged.as_str()] {
        let mut ws = server.ws(&format!("?token={token}")).await;
        let (code, reason, seen) = ws.close_code().await;
        assert_eq!(code, 4001, "{reason}");
        assert_eq!(seen.len(), 1, "only the error frame: {seen:?}");
        assert_eq!(seen[0]["type"], "error");
        assert_eq!(seen[0]["code"], "unauthorized");
        assert!(seen[0]["message"].is_string());
    }
    // The same through the auth frame.
    wait_for("the short token to expire", WAIT, || async {
        server.jwt.verify(&expired).is_err()
    })
    .await;
    let mut ws = server.ws("").await;
    ws.send_json(json!({ "type": "auth", "token": expired }))
        .await;
    let (code, _, seen) = ws.close_code().await;
    assert_eq!(code, 4001);
    assert_eq!(seen[0]["message"], "token expired");
}

#[tokio::test]
async fn no_auth_frame_in_time_closes_with_4008() {
    let server =
        TestServer::start_with(|c| c.limits.auth_timeout = Duration::from_millis(200)).await;
    let mut ws = server.ws("").await;
    let (code, reason, seen) = ws.close_code().await;
    assert_eq!(code, 4008, "{reason}");
    assert_eq!(seen[0]["code"], "unauthorized");
}

#[tokio::test]
async fn malformed_frames_get_error_frames_until_the_limit_then_close_1008() {
    let server = TestServer::start().await;
    let mut ws = server.ws_for("acme").await;
    ws.send_text("not json").await;
    assert_eq!(ws.next_json().await["code"], "bad_request");
    ws.send_json(json!({ "type": "teleport" })).await;
    let frame = ws.next_json().await;
    assert_eq!(
        (frame["type"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    ws.stream
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["code"], "bad_request");
    ws.send_json(json!({ "type": "auth", "token": server.token("acme") }))
        .await;
    assert_eq!(
        ws.next_json().await["code"],
        "bad_request",
        "already authenticated"
    );

    // Still connected and served.
    let receipt = server.publish("acme", "still.here", json!({})).await;
    assert_eq!(ws.next_event().await["id"], receipt["id"]);

    let limit = statushub::transport::ws::MAX_BAD_FRAMES as usize;
    for _ in 4..=limit {
        ws.send_text("{").await;
    }
    for _ in 4..=limit {
        assert_eq!(ws.next_json().await["code"], "bad_request");
    }
    ws.send_text("{").await;
    let (code, reason, _) = ws.close_code().await;
    assert_eq!(code, 1008, "{reason}");
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_others_keep_being_served() {
    let server = TestServer::start_with(|c| c.limits.max_message_bytes = 2048).await;
    let mut big = server.ws_for("acme").await;
    let mut other = server.ws_for("acme").await;
    big.send_text(&format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(8192)
    ))
    .await;
    let (code, reason, seen) = big.close_code().await;
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(seen.len(), 1, "only the error frame: {seen:?}");
    assert_eq!(seen[0]["code"], "too_large");

    let receipt = server.publish("acme", "after.big", json!({})).await;
    assert_eq!(other.next_event().await["id"], receipt["id"]);
}

/// A client still writing a frame far over the limit when the hub gives up
/// on it must read the 1009 close, not a TCP reset: the hub half-closes and
/// reads the rest away (bounded) instead of closing on unread bytes.
#[tokio::test]
async fn a_client_writing_a_frame_far_over_the_limit_reads_1009_not_a_reset() {
    let server = TestServer::start_with(|c| c.limits.max_message_bytes = 2048).await;
    let mut big = server.ws_for("acme").await;
    big.send_text(&"x".repeat(4 << 20)).await;
    let (code, reason, _) = big.close_code().await;
    assert_eq!(code, 1009, "{reason}");
}

#[tokio::test]
async fn admins_subscribe_to_any_account_and_others_get_forbidden_only() {
    let server = TestServer::start().await;
    let earlier = server.publish("acme", "before", json!({})).await;

    let mut admin = server.ws(&format!("?token={}", server.admin_token())).await;
    assert_eq!(admin.next_json().await["data"]["accountId"], "ops");
    admin
        .send_json(json!({ "type": "subscribe", "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(
        admin.next_event().await["id"],
        earlier["id"],
        "replayed from since"
    );

    let mut user = server.ws_for("globex").await;
    user.send_json(json!({ "type": "subscribe", "accountId": "acme" }))
        .await;
    let refusal = user.next_json().await;
    assert_eq!(refusal["type"], "error");
    assert_eq!(refusal["code"], "forbidden");
    user.send_json(json!({ "type": "subscribe", "accountId": "globex" }))
        .await;
    assert_eq!(
        user.next_json().await["code"],
        "bad_request",
        "already subscribed"
    );

    // acme's event is committed first: had the refusal leaked a
    // subscription, it would reach the user before globex's.
    let live = server.publish("acme", "live", json!({})).await;
    let own = server.publish("globex", "own", json!({})).await;
    assert_eq!(user.next_event().await["id"], own["id"]);
    assert_eq!(admin.next_event().await["id"], live["id"]);
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let server = TestServer::start_with(|c| c.limits.max_subscriptions = 2).await;
    let mut admin = server.ws(&format!("?token={}", server.admin_token())).await;
    assert_eq!(admin.next_json().await["type"], "snapshot");
    admin
        .send_json(json!({ "type": "subscribe", "accountId": "a1" }))
        .await;
    assert_eq!(admin.next_json().await["data"]["accountId"], "a1");
    admin
        .send_json(json!({ "type": "subscribe", "accountId": "a2" }))
        .await;
    let refusal = admin.next_json().await;
    assert_eq!(refusal["code"], "too_many_subscriptions", "{refusal}");
    admin
        .send_json(json!({ "type": "subscribe", "accountId": "../x" }))
        .await;
    assert_eq!(admin.next_json().await["code"], "bad_request");
}

#[tokio::test]
async fn the_server_pings_and_closes_a_peer_that_stops_answering() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval = Duration::from_millis(100);
        c.limits.ping_timeout = Duration::from_millis(200);
    })
    .await;
    let mut silent = server.ws_for("acme").await;
    // A peer that keeps reading answers pings (tungstenite pongs while reading).
    let mut lively = server.ws_for("acme").await;
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(Ok(msg)) = lively.stream.next().await {
            if let Message::Text(text) = msg {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "event" {
                    events.push(frame);
                    return events;
                }
            }
        }
        events
    });
    wait_for("the silent peer to be closed", WAIT, || async {
        server.open_connections("websocket").await == 1
    })
    .await;
    let (end, _) = silent.end().await;
    assert_eq!(
        end,
        WsEnd::Closed {
            code: 4010,
            reason: "ping_timeout: no pong in time".into()
        }
    );
    let receipt = server.publish("acme", "alive", json!({})).await;
    let events = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(
        events[0]["id"], receipt["id"],
        "the answering peer is still served"
    );
    let stats = server.stats().await;
    assert_eq!(
        stats["connections"]["websocket"]["closed"]["ping_timeout"],
        1
    );
}

#[tokio::test]
async fn a_plain_get_is_told_to_upgrade() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/ws", Some(API_KEY)).await;
    assert!(status == 400 || status == 426, "{status}");
    assert_eq!(common::error_code(&body), "upgrade_required");
}

/// `since` is judged by the one subscribe path: a number no integer can
/// hold is a bad `since` in the `auth` and `subscribe` frames and in the URL.
#[tokio::test]
async fn a_since_out_of_range_is_a_bad_request_everywhere() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    ws.send_text(&format!(
        r#"{{"type":"auth","token":"{}","since":1e400}}"#,
        server.token("acme")
    ))
    .await;
    let refusal = ws.next_json().await;
    assert_eq!(
        (refusal["code"].as_str(), refusal["message"].as_str()),
        (
            Some("bad_request"),
            Some("since must be a non-negative integer")
        ),
        "{refusal}"
    );
    ws.send_text(&format!(
        r#"{{"type":"auth","token":"{}","since":"2"}}"#,
        server.token("acme")
    ))
    .await;
    assert_eq!(
        ws.next_json().await["type"],
        "snapshot",
        "reset: nothing retained"
    );

    let mut admin = server.ws(&format!("?token={}", server.admin_token())).await;
    assert_eq!(admin.next_json().await["type"], "snapshot");
    admin
        .send_text(r#"{"type":"subscribe","accountId":"acme","since":-1e400}"#)
        .await;
    assert_eq!(admin.next_json().await["code"], "bad_request");

    let refused = server
        .ws_request(
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                server.ws_url(&format!("/ws?token={}&since=1e400", server.token("acme"))),
            )
            .expect("request"),
        )
        .await
        .err()
        .expect("refused before the upgrade");
    assert!(
        matches!(&refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 400),
        "{refused}"
    );
}

/// A `/ws` connection spoken over raw TCP, for frames no WebSocket library
/// will send: the upgrade is done by hand and frames are written as bytes.
async fn raw_ws(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.token("acme"),
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, tcp.read_u8()).await.unwrap();
        head.push(byte.expect("upgrade response"));
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// A client frame's bytes: `first` is FIN, RSV and opcode; masked with a
/// fixed key unless `masked` is false. `len` is the length the header claims.
fn raw_frame(first: u8, payload: &[u8], len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first];
    match len {
        0..=125 => frame.push(mask_bit | len as u8),
        126..=0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&len.to_be_bytes());
        }
    }
    let key = [1u8, 2, 3, 4];
    if masked {
        frame.extend_from_slice(&key);
    }
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    frame
}

/// Reads server frames (never masked) until the close frame; its code, or
/// `None` if the connection ended without one.
async fn raw_close_code(tcp: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let read = async {
        loop {
            let first = tcp.read_u8().await.ok()?;
            let len = match tcp.read_u8().await.ok()? & 0x7f {
                126 => u64::from(tcp.read_u16().await.ok()?),
                127 => tcp.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            tcp.read_exact(&mut payload).await.ok()?;
            if first & 0x0f == 0x8 {
                return Some(
                    payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                );
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("closed within the wait")
}

/// Frames that break RFC 6455 close with its codes (issue 12): 1007 for a
/// text frame that is not UTF-8, 1002 for an unmasked client frame, a
/// reserved opcode or reserved bits — never a close without a status.
#[tokio::test]
async fn protocol_errors_close_with_1002_or_1007() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "text that is not UTF-8",
            raw_frame(0x81, &[0xff, 0xfe, 0x41], 3, true),
            1007,
        ),
        (
            "an unmasked client frame",
            raw_frame(0x81, b"{}", 2, false),
            1002,
        ),
        ("a reserved opcode", raw_frame(0x83, b"{}", 2, true), 1002),
        ("a reserved bit", raw_frame(0xc1, b"{}", 2, true), 1002),
    ];
    for (what, frame, expected) in cases {
        let mut tcp = raw_ws(&server).await;
        tcp.write_all(&frame).await.unwrap();
        assert_eq!(raw_close_code(&mut tcp).await, Some(expected), "{what}");
    }
    // Well-formed frames on the same server are still served.
    let mut ws = server.ws_for("acme").await;
    let receipt = server.publish("acme", "after.bad.frames", json!({})).await;
    assert_eq!(ws.next_event().await["id"], receipt["id"]);
}

/// A frame whose header claims far more than the limit is refused from its
/// header, without buffering it, with close 1009.
#[tokio::test]
async fn a_frame_far_over_the_limit_closes_with_1009() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| c.limits.max_message_bytes = 2048).await;
    let mut tcp = raw_ws(&server).await;
    let claimed = 1 << 40;
    tcp.write_all(&raw_frame(0x81, &[b'x'; 512], claimed, true))
        .await
        .unwrap();
    assert_eq!(raw_close_code(&mut tcp).await, Some(1009));
}
