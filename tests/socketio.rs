//! Socket.IO admin subscriptions (`subscribe` with an ack), the
//! cross-account rule on connect and on subscribe, and the connect refusals,
//! against a real server with a real Socket.IO v5 client over WebSocket.

mod common;

use common::TestServer;
use serde_json::json;

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
    assert_eq!(ack, json!({ "ok": true, "seq": 1 }));
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
