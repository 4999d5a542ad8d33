//! The cross-account rule at every entry point: a client token reads and
//! receives only its own account; an admin token may read and subscribe to
//! any; a refusal is `forbidden` and nothing else — no event of the other
//! account ever arrives afterwards.

mod common;

use common::{TestServer, error_code};
use serde_json::json;

#[tokio::test]
async fn a_client_token_reaches_only_its_own_account_and_an_admin_reaches_any() {
    let server = TestServer::start().await;
    server
        .publish("acme", "secret", json!({ "acme": true }))
        .await;
    let user = server.token("globex");
    let admin = server.admin_token();

    // HTTP reads and the SSE stream, by header and by query token.
    for path in [
        "/v1/accounts/acme/status",
        "/v1/accounts/acme/events?since=0",
    ] {
        let (status, body) = server.get(path, Some(&user)).await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{path}");
        assert_eq!(server.get(path, Some(&admin)).await.0, 200, "{path}");
    }
    let stream = "/v1/accounts/acme/stream";
    assert_eq!(
        server
            .sse_request(&format!("{stream}?token={user}"), &[])
            .await
            .status(),
        403
    );
    let bearer = format!("Bearer {user}");
    assert_eq!(
        server
            .sse_request(stream, &[("authorization", &bearer)])
            .await
            .status(),
        403
    );
    let mut admin_sse = server.sse(&format!("{stream}?token={admin}"), &[]).await;
    assert_eq!(admin_sse.next_event().await.json()["accountId"], "acme");

    // A client token cannot publish at all: publishing takes an API key.
    let publish = server
        .http
        .post(format!("{}/v1/accounts/globex/events", server.url))
        .bearer_auth(&user)
        .json(&json!({ "event": "x", "data": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 401);

    // Connecting joins the token's own account, whatever else is asked for.
    let mut ws = server.ws(&format!("?token={user}")).await;
    assert_eq!(ws.next_json().await["data"]["accountId"], "globex");
    let mut sio = server
        .socketio(json!({ "token": user, "accountId": "acme" }))
        .await
        .expect("socket.io");
    assert_eq!(
        sio.next_event().await.expect("snapshot").1["accountId"],
        "globex"
    );

    // Subscribing to another account: forbidden for the user, fine for the admin.
    ws.send_json(json!({ "type": "subscribe", "accountId": "acme", "since": 0 }))
        .await;
    let refusal = ws.next_json().await;
    assert_eq!(
        (refusal["type"].as_str(), refusal["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    let (ack, _) = sio
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(ack["error"]["code"], "forbidden");
    let mut admin_ws = server.ws(&format!("?token={admin}")).await;
    admin_ws.next_json().await;
    admin_ws
        .send_json(json!({ "type": "subscribe", "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(admin_ws.next_event().await["event"], "secret");
    let mut admin_sio = server
        .socketio(json!({ "token": admin }))
        .await
        .expect("socket.io");
    let (ack, replayed) = admin_sio
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "since": 0 }))
        .await;
    assert_eq!(ack["ok"], true);
    let secret = match replayed.into_iter().find(|(name, _, _)| name == "secret") {
        Some(event) => event,
        None => loop {
            let event = admin_sio.next_event().await.expect("replay");
            if event.0 == "secret" {
                break event;
            }
        },
    };
    assert_eq!(secret.1, json!({ "acme": true }));

    // Nothing of acme reaches the refused clients: acme's event is committed
    // first, so a leak would arrive before globex's.
    server
        .publish("acme", "secret", json!({ "acme": true }))
        .await;
    let own = server.publish("globex", "own", json!({})).await;
    assert_eq!(ws.next_event().await["id"], own["id"]);
    let (name, _, meta) = sio.next_event().await.expect("own event");
    assert_eq!((name.as_str(), &meta["id"]), ("own", &own["id"]));
}
