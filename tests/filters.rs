//! Subscription filters on every transport against a real server: a
//! filtered Socket.IO, `/ws` and SSE client each get exactly the matching
//! events (snapshot, live and on resume, with the account's seqs) while an
//! unfiltered one gets all; a malformed filter gets the contract's error
//! shape on each transport.

mod common;

use common::{API_KEY, TestServer, error_code};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// Orders, and phone p1.
fn filter() -> Value {
    json!([{ "events": ["order.*"] }, { "phoneIds": ["p1"] }])
}

/// Percent-encodes a query value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seq 1 phone p1, 2 phone p2, 3 order.paid, 4 other.thing.
async fn seed(server: &TestServer) {
    server.phone_test("acme", "p1", true).await;
    server.phone_test("acme", "p2", true).await;
    server.publish("acme", "order.paid", json!({})).await;
    server.publish("acme", "other.thing", json!({})).await;
}

/// Seq 5 other.x, 6 order.shipped, 7 phone p2, 8 phone p1, 9 order.done.
async fn live(server: &TestServer) {
    server.publish("acme", "other.x", json!({})).await;
    server.publish("acme", "order.shipped", json!({})).await;
    server.phone_test("acme", "p2", false).await;
    server.phone_test("acme", "p1", false).await;
    server.publish("acme", "order.done", json!({})).await;
}

fn phones(snapshot: &Value) -> Vec<String> {
    let mut keys: Vec<String> = snapshot["phones"]
        .as_object()
        .expect("phones")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

async fn sio_seqs(client: &mut common::SioClient, until: u64) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < until) {
        let (name, _, meta) = client.next_event().await.expect("connected");
        seen.push((meta["seq"].as_u64().expect("seq"), name));
    }
    seen
}

async fn ws_seqs(client: &mut common::WsClient, until: u64) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < until) {
        let frame = client.next_event().await;
        let name = frame["event"].as_str().unwrap_or_default().to_owned();
        seen.push((frame["seq"].as_u64().expect("seq"), name));
    }
    seen
}

async fn sse_seqs(client: &mut common::SseClient, until: u64) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < until) {
        let event = client.next_event().await;
        let seq = event.id.as_deref().and_then(|id| id.parse().ok());
        seen.push((seq.expect("events carry their seq as id"), event.event));
    }
    seen
}

fn named(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|(s, n)| (*s, (*n).to_owned())).collect()
}

#[tokio::test]
async fn filtered_clients_get_exactly_the_matching_events_live_and_on_resume() {
    let server = TestServer::start().await;
    seed(&server).await;
    let token = server.token("acme");

    let mut sio = server
        .socketio(json!({ "token": token, "filter": filter() }))
        .await
        .expect("socket.io connects");
    let (name, snapshot, _) = sio.next_event().await.expect("snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(
        (snapshot["seq"].as_u64(), phones(&snapshot)),
        (Some(4), vec!["p1".into()])
    );

    let mut ws = server.ws("").await;
    ws.send_json(json!({ "type": "auth", "token": token, "filter": filter() }))
        .await;
    let snapshot = ws.next_json().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(phones(&snapshot["data"]), ["p1"]);

    let query = format!("?token={token}&filter={}", enc(&filter().to_string()));
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream{query}"), &[])
        .await;
    let first = sse.next_event().await;
    assert_eq!(
        (first.event.as_str(), first.id.as_deref()),
        ("snapshot", Some("4"))
    );
    assert_eq!(phones(&first.json()), ["p1"]);

    let mut all = server.ws_for("acme").await;
    live(&server).await;

    let wanted = named(&[
        (6, "order.shipped"),
        (8, "phone_status_changed"),
        (9, "order.done"),
    ]);
    assert_eq!(sio_seqs(&mut sio, 9).await, wanted, "socket.io live");
    assert_eq!(ws_seqs(&mut ws, 9).await, wanted, "/ws live");
    assert_eq!(sse_seqs(&mut sse, 9).await, wanted, "SSE live");
    let every: Vec<u64> = ws_seqs(&mut all, 9).await.iter().map(|(s, _)| *s).collect();
    assert_eq!(every, [5, 6, 7, 8, 9], "the unfiltered tab gets all");

    // Resuming after seq 1 replays only the matching events after it, then live ones.
    let mut resumed_sio = server
        .socketio(json!({ "token": token, "since": 1, "filter": filter() }))
        .await
        .expect("socket.io resumes");
    let mut resumed_ws = server.ws("").await;
    resumed_ws
        .send_json(json!({ "type": "auth", "token": token, "since": 1, "filter": filter() }))
        .await;
    let last = [("last-event-id", "1")];
    let mut resumed_sse = server
        .sse(&format!("/v1/accounts/acme/stream{query}"), &last)
        .await;
    let mut wanted = named(&[(3, "order.paid")]);
    wanted.extend(named(&[
        (6, "order.shipped"),
        (8, "phone_status_changed"),
        (9, "order.done"),
    ]));
    assert_eq!(
        sio_seqs(&mut resumed_sio, 9).await,
        wanted,
        "socket.io resume"
    );
    assert_eq!(ws_seqs(&mut resumed_ws, 9).await, wanted, "/ws resume");
    assert_eq!(sse_seqs(&mut resumed_sse, 9).await, wanted, "SSE resume");

    server.publish("acme", "skipped", json!({})).await;
    server.publish("acme", "order.late", json!({})).await;
    let late = named(&[(11, "order.late")]);
    assert_eq!(sio_seqs(&mut resumed_sio, 11).await, late);
    assert_eq!(ws_seqs(&mut resumed_ws, 11).await, late);
    assert_eq!(sse_seqs(&mut resumed_sse, 11).await, late);
    assert_eq!(
        sio_seqs(&mut sio, 11).await,
        late,
        "a filtered gap is no loss"
    );
}

#[tokio::test]
async fn admin_subscriptions_carry_a_filter_on_ws_and_socketio() {
    let server = TestServer::start().await;
    seed(&server).await;
    let admin = server.admin_token();
    let mut ws = server.ws(&format!("?token={admin}")).await;
    assert_eq!(ws.next_json().await["type"], "snapshot");
    ws.send_json(
        json!({ "type": "subscribe", "accountId": "acme", "since": 0,
        "filter": [{ "events": ["phone_status_changed"], "phoneIds": ["p2"] }] }),
    )
    .await;
    let mut sio = server
        .socketio(json!({ "token": admin }))
        .await
        .expect("admin connects");
    assert_eq!(sio.next_event().await.expect("snapshot").0, "snapshot");
    let (ack, _) = sio
        .emit_with_ack(
            "subscribe",
            json!({ "accountId": "acme", "filter": [{ "events": ["order.*"] }] }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let (name, snapshot, _) = sio.next_event().await.expect("snapshot");
    assert_eq!((name.as_str(), phones(&snapshot)), ("snapshot", vec![]));
    live(&server).await;
    let ws_wanted = named(&[(2, "phone_status_changed"), (7, "phone_status_changed")]);
    assert_eq!(ws_seqs(&mut ws, 7).await, ws_wanted);
    let sio_wanted = named(&[(6, "order.shipped"), (9, "order.done")]);
    assert_eq!(sio_seqs(&mut sio, 9).await, sio_wanted);
}

const BAD: &str = r#"[{"kinds":["down"]}]"#;

#[tokio::test]
async fn a_malformed_filter_is_a_bad_request_naming_the_field_on_every_transport() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    let bad: Value = serde_json::from_str(BAD).unwrap();
    let names_field = |message: &str| message.contains("filter[0].kinds[0]");

    let refused = server
        .socketio(json!({ "token": token, "filter": bad }))
        .await
        .err()
        .expect("socket.io refuses");
    assert!(
        refused.starts_with("bad_request: ") && names_field(&refused),
        "{refused}"
    );

    let mut ws = server.ws("").await;
    ws.send_json(json!({ "type": "auth", "token": token, "filter": bad }))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(
        (frame["type"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    assert!(
        names_field(frame["message"].as_str().unwrap_or_default()),
        "{frame}"
    );
    ws.send_json(json!({ "type": "auth", "token": token }))
        .await;
    assert_eq!(
        ws.next_json().await["type"],
        "snapshot",
        "a good auth frame still works"
    );
    ws.send_json(json!({ "type": "subscribe", "accountId": "other", "filter": "x" }))
        .await;
    let frame = ws.next_json().await;
    assert_eq!(frame["code"], "bad_request", "{frame}");

    let url = server.ws_url(&format!("/ws?token={token}&filter={}", enc(BAD)));
    match server.ws_request(url.into_client_request().unwrap()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON error body");
            assert_eq!(error_code(&body), "bad_request");
            assert!(names_field(
                body["error"]["message"].as_str().unwrap_or_default()
            ));
        }
        other => panic!("a bad ?filter= refuses the upgrade: {:?}", other.err()),
    }

    for filter in [enc(BAD), enc("{"), enc("[]")] {
        let path = format!("/v1/accounts/acme/stream?filter={filter}");
        let response = server
            .sse_request(&path, &[("authorization", &format!("Bearer {API_KEY}"))])
            .await;
        assert_eq!(response.status(), 400, "{filter}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(error_code(&body), "bad_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("filter"),
            "{body}"
        );
    }

    let admin = server.admin_token();
    let mut sio = server
        .socketio(json!({ "token": admin }))
        .await
        .expect("admin");
    let (ack, _) = sio
        .emit_with_ack("subscribe", json!({ "accountId": "acme", "filter": bad }))
        .await;
    assert_eq!(error_code(&ack), "bad_request");
    assert!(
        names_field(ack["error"]["message"].as_str().unwrap_or_default()),
        "{ack}"
    );
}

/// What `[{monitorIds: [m1], kinds: [error_state, recovery]}, {healthLevels: [unknown]}, {events: [done]}]`
/// lets through, by the rules of docs/FILTERS.md.
fn monitor_filter_passes(event: &Value) -> bool {
    let data = &event["data"];
    let health_changed = event["event"] == "health_changed";
    let m1_trouble = health_changed
        && data["monitorId"] == "m1"
        && (data["kind"] == "error_state" || data["kind"] == "recovery");
    m1_trouble || data["current"]["health"] == "unknown" || event["event"] == "done"
}

#[tokio::test]
async fn monitor_filters_select_by_monitor_kind_and_health_level() {
    let server = TestServer::start().await;
    let spec = json!({ "url": "http://127.0.0.1:9/", "intervalMs": 3_600_000, "timeoutMs": 1000,
        "maxRetries": 0, "backoffMultiplier": 1 });
    for id in ["m1", "m2"] {
        let (status, body) = server
            .put(&format!("/v1/accounts/acme/monitors/{id}"), &spec)
            .await;
        assert!(status == 200 || status == 201, "{body}");
    }
    let filter = json!([{ "monitorIds": ["m1"], "kinds": ["error_state", "recovery"] },
        { "healthLevels": ["unknown"] }, { "events": ["done"] }]);
    let mut all = server.ws_for("acme").await;
    let mut filtered = server
        .ws(&format!(
            "?token={}&filter={}",
            server.token("acme"),
            enc(&filter.to_string())
        ))
        .await;
    let snapshot = filtered.next_json().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    for (id, health) in [
        ("m1", "healthy"),
        ("m2", "healthy"),
        ("m1", "unhealthy"),
        ("m2", "unhealthy"),
        ("m1", "healthy"),
        ("m2", "unknown"),
        ("m1", "unknown"),
    ] {
        let (status, body) = server
            .post(
                &format!("/v1/accounts/acme/monitors/{id}/status"),
                &json!({ "health": health }),
            )
            .await;
        assert!(status == 200 || status == 201, "{body}");
    }
    let done = server.publish("acme", "done", json!({})).await["seq"]
        .as_u64()
        .expect("seq");
    let mut expected = Vec::new();
    loop {
        let frame = all.next_event().await;
        if monitor_filter_passes(&frame) {
            expected.push((
                frame["seq"].as_u64().expect("seq"),
                frame["event"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        if frame["seq"] == done {
            break;
        }
    }
    let names: Vec<&str> = expected.iter().map(|(_, n)| n.as_str()).collect();
    assert!(
        names.len() >= 4,
        "an m1 error_state and recovery, two unknowns, done: {expected:?}"
    );
    assert_eq!(ws_seqs(&mut filtered, done).await, expected);
}
