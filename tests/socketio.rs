//! Socket.IO admin subscriptions (`subscribe` with an ack), the
//! cross-account rule on connect and on subscribe, and the connect refusals,
//! against a real server with a real Socket.IO v5 client over WebSocket.

mod common;

use common::{TestServer, WAIT, error_code, wait_for};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn connect_joins_the_own_account_and_refuses_bad_tokens() {
    let server = TestServer::start().await;
    let mut client = server
        .socketio(json!({ "token": server.token("acme") }))
        .await
        .expect("connected");
    let (name, snapshot, _) = client.next_event().await.expect("snapshot");
    assert_eq!(
        (name.as_str(), &snapshot["accountId"]),
        ("snapshot", &json!("acme"))
    );
    let receipt = server.phone_test("acme", "p1", true).await;
    let (name, data, meta) = client.next_event().await.expect("event");
    assert_eq!(name, "phone_status_changed");
    assert_eq!(data["phoneNumberId"], "p1");
    assert_eq!(meta["seq"], receipt["seq"]);
    assert_eq!(meta["id"], receipt["id"]);

    for auth in [
        json!({}),
        json!({ "token": "garbage" }),
        json!({ "token": server.token("acme"), "since": "x" }),
    ] {
        let refusal = server.socketio(auth.clone()).await.err().expect("refused");
        assert!(
            refusal.starts_with("unauthorized:") || refusal.starts_with("bad_request:"),
            "{auth}: {refusal}"
        );
    }
}

#[tokio::test]
async fn admins_subscribe_with_an_ack_and_receive_the_other_account() {
    let server = TestServer::start().await;
    let before = server.publish("acme", "before", json!({})).await;
    let mut admin = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("connected");
    assert_eq!(
        admin.next_event().await.expect("snapshot").1["accountId"],
        "ops"
    );

    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(
        (&ack["ok"], &ack["seq"]),
        (&json!(true), &json!(1)),
        "{ack}"
    );
    assert!(ack["epoch"].is_string(), "the ack names the epoch: {ack}");
    let (name, _, meta) = admin.next_event().await.expect("replayed event");
    assert_eq!((name.as_str(), &meta["id"]), ("before", &before["id"]));

    let live = server.publish("acme", "live", json!({ "x": 1 })).await;
    let (name, data, meta) = admin.next_event().await.expect("live event");
    assert_eq!(
        (name.as_str(), &data, &meta["seq"]),
        ("live", &json!({ "x": 1 }), &live["seq"])
    );
}

#[tokio::test]
async fn a_non_admin_subscribe_is_forbidden_and_delivers_nothing() {
    let server = TestServer::start().await;
    let mut user = server
        .socketio(json!({ "token": server.token("globex") }))
        .await
        .expect("connected");
    assert_eq!(user.next_event().await.expect("snapshot").0, "snapshot");

    let (ack, _) = user
        .emit_with_ack("subscribe", json!({ "accountId": "acme" }))
        .await;
    assert_eq!(ack["error"]["code"], "forbidden", "{ack}");
    let (ack, _) = user
        .emit_with_ack("subscribe", json!({ "account": "acme" }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");

    // acme's event is committed first; a leaked subscription would deliver it first.
    server.publish("acme", "not.yours", json!({})).await;
    let own = server.publish("globex", "yours", json!({})).await;
    let (name, _, meta) = user.next_event().await.expect("own event");
    assert_eq!((name.as_str(), &meta["id"]), ("yours", &own["id"]));
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let server = TestServer::start_with(|c| c.limits.max_subscriptions = 2).await;
    let mut admin = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("connected");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "a1" }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "a2" }))
        .await;
    assert_eq!(ack["error"]["code"], "too_many_subscriptions", "{ack}");
}

/// The server reads WebSocket frames in small pieces (its read buffer is
/// kept small for idle memory): a connect packet many times that size must
/// still arrive whole.
#[tokio::test]
async fn a_connect_packet_larger_than_the_read_buffer_arrives_whole() {
    let server = TestServer::start().await;
    let padding = "x".repeat(40_000);
    let mut client = server
        .socketio(json!({ "token": server.token("acme"), "padding": padding }))
        .await
        .expect("connected");
    assert_eq!(
        client.next_event().await.expect("snapshot").1["accountId"],
        "acme"
    );
}

/// A `since` no integer can hold (`1e400` overflows even a float) is a bad
/// `since`, not an unreadable `auth` (issue 12): the same refusal as any
/// other bad `since`, on connect and on subscribe.
#[tokio::test]
async fn a_since_out_of_range_is_refused_as_a_bad_since() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    for since in ["1e400", "-1e400", "-1", "1.5", "\"x\""] {
        let refusal = server
            .socketio_raw(&format!(r#"{{"token":"{token}","since":{since}}}"#))
            .await
            .err()
            .expect("refused");
        assert_eq!(
            refusal, "bad_request: since must be a non-negative integer",
            "since {since}"
        );
    }
    let mut client = server
        .socketio_raw(&format!(r#"{{"token":"{token}","since":"0"}}"#))
        .await
        .expect("a numeric string is a since");
    let before = server.publish("acme", "first", json!({})).await;
    let (name, _, meta) = client.next_event().await.expect("event");
    assert_eq!((name.as_str(), &meta["id"]), ("first", &before["id"]));

    let mut admin = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("connected");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "since": -1 }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    assert_eq!(
        ack["error"]["message"], "since must be a non-negative integer",
        "{ack}"
    );
}

/// A repeated subscribe is refused as on `/ws` (Centrifugo's "already
/// subscribed"); the first subscription keeps delivering, once.
#[tokio::test]
async fn a_repeated_subscribe_is_refused_and_the_first_one_keeps_delivering() {
    let server = TestServer::start().await;
    let mut admin = server
        .socketio(json!({ "token": server.admin_token() }))
        .await
        .expect("connected");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "acme" }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    let (ack, _) = admin
        .emit_with_ack("subscribe", json!({ "accountId": "ops" }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "own account: {ack}");

    let first = server.publish("acme", "one", json!({})).await;
    let second = server.publish("acme", "two", json!({})).await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let (name, _, meta) = admin.next_event().await.expect("event");
        if name != "snapshot" {
            ids.push(meta["id"].clone());
        }
    }
    assert_eq!(
        ids,
        [first["id"].clone(), second["id"].clone()],
        "once each"
    );
}

/// An Engine.IO polling handshake (`GET ?EIO=4&transport=polling`, no
/// `sid`): the HTTP status and body.
async fn polling_handshake(server: &TestServer) -> (u16, String) {
    let response = server
        .http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .send()
        .await
        .expect("handshake request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("handshake body"))
}

/// The session id of an Engine.IO open packet (`0{"sid":…}`).
fn open_sid(body: &str) -> String {
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet"))
        .expect("open packet is JSON");
    open["sid"].as_str().expect("sid").to_owned()
}

/// Engine.IO sessions are connections from their handshake (issue 12): a
/// client that opens sessions and never sends a Socket.IO CONNECT is held to
/// the per-IP limit like any other, with the contract's 429.
#[tokio::test]
async fn polling_handshakes_past_the_per_ip_limit_are_refused_with_429() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connections_per_ip = 3;
        c.limits.connect_timeout = Duration::from_secs(60);
    })
    .await;
    for _ in 0..3 {
        let (status, body) = polling_handshake(&server).await;
        assert_eq!(status, 200, "{body}");
        open_sid(&body);
    }
    let response = server
        .http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(error_code(&body), "too_many_connections");
    assert_eq!(server.open_connections("socketio").await, 3);

    let refused = server
        .socketio(json!({ "token": server.token("acme") }))
        .await
        .err()
        .expect("a WebSocket handshake is a session too");
    assert!(refused.starts_with("too_many_connections:"), "{refused}");
    let stats = server.stats().await;
    assert_eq!(stats["connectionsRefused"]["too_many_connections"], 2);
}

/// Sessions that do not join the namespace within `--connect-timeout` are
/// closed, and their place is free again.
#[tokio::test]
async fn sessions_that_never_connect_are_reaped_and_free_their_place() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connections_per_ip = 2;
        c.limits.connect_timeout = Duration::from_millis(300);
    })
    .await;
    let (_, first) = polling_handshake(&server).await;
    let sid = open_sid(&first);
    assert_eq!(polling_handshake(&server).await.0, 200);
    assert_eq!(polling_handshake(&server).await.0, 429, "at the limit");

    wait_for("unjoined sessions to be reaped", WAIT, || async {
        server.open_connections("socketio").await == 0
    })
    .await;
    let (status, _) = server
        .get(
            &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
            None,
        )
        .await;
    assert_eq!(status, 400, "the reaped session is gone");

    let mut client = server
        .socketio(json!({ "token": server.token("acme") }))
        .await
        .expect("the freed place serves a client");
    assert_eq!(client.next_event().await.expect("snapshot").0, "snapshot");
    let mut other = server
        .socketio(json!({ "token": server.token("acme") }))
        .await
        .expect("both places are free");
    assert_eq!(other.next_event().await.expect("snapshot").0, "snapshot");
    // A client that joined in time is not reaped.
    let receipt = server.publish("acme", "still.here", json!({})).await;
    let (name, _, meta) = client.next_event().await.expect("event");
    assert_eq!((name.as_str(), &meta["id"]), ("still.here", &receipt["id"]));
}

/// A session that starts on polling and upgrades to WebSocket, as
/// socket.io-client does by default, is one connection throughout.
#[tokio::test]
async fn a_polling_session_upgraded_to_websocket_is_one_connection() {
    // Two: the per-IP bound on HTTP connections must let the upgrade's own
    // TCP connection in next to the polling one.
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let (_, open) = polling_handshake(&server).await;
    let sid = open_sid(&open);
    let poll_url = format!(
        "{}/socket.io/?EIO=4&transport=polling&sid={sid}",
        server.url
    );
    let connect = format!("40{}", json!({ "token": server.token("acme") }));
    let response = server
        .http
        .post(&poll_url)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(connect)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut polled = String::new();
    while !polled.contains("40{") {
        let response = server.http.get(&poll_url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        polled.push_str(&response.text().await.unwrap());
    }
    assert_eq!(server.open_connections("socketio").await, 1);

    let upgrade = server
        .ws_url(&format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"))
        .into_client_request()
        .unwrap();
    let mut ws = server.ws_request(upgrade).await.expect("upgrade");
    ws.send_text("2probe").await;
    assert_eq!(ws.next_text().await, "3probe");
    ws.send_text("5").await;
    assert_eq!(server.open_connections("socketio").await, 1, "still one");
    assert_eq!(polling_handshake(&server).await.0, 200, "one place is left");
    assert_eq!(polling_handshake(&server).await.0, 429, "and only one");

    let receipt = server.publish("acme", "over.ws", json!({})).await;
    loop {
        let text = ws.next_text().await;
        if text == "2" {
            ws.send_text("3").await;
        } else if text.starts_with("42[\"over.ws\"") {
            assert!(text.contains(receipt["id"].as_str().unwrap()), "{text}");
            break;
        }
    }
    drop(ws);
    wait_for("the session's place to be released", WAIT, || async {
        server.open_connections("socketio").await == 1
    })
    .await;
    assert_eq!(polling_handshake(&server).await.0, 200);
}
