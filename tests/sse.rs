//! The SSE transport at `/v1/accounts/{account}/stream` against a real
//! server: `id`/`event`/`data` lines, proxy headers, `Last-Event-ID` and
//! `?since=` resume, keep-alives, credentials and the cross-account rule.

mod common;

use common::{API_KEY, SseItem, TestServer, error_code};
use serde_json::json;
use std::time::Duration;

const STREAM: &str = "/v1/accounts/acme/stream";

#[tokio::test]
async fn the_stream_sends_the_snapshot_then_events_with_seq_ids() {
    let server = TestServer::start().await;
    let response = server
        .sse_request(&format!("{STREAM}?token={}", server.token("acme")), &[])
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let mut sse = common::SseClient::new(response);

    let snapshot = sse.next_event().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.id.as_deref(), Some("0"));
    assert_eq!(snapshot.json()["accountId"], "acme");

    let phone = server.phone_test("acme", "p1", true).await;
    let custom = server
        .publish("acme", "build.done", json!({ "ok": true }))
        .await;
    for (receipt, name) in [(&phone, "phone_status_changed"), (&custom, "build.done")] {
        let event = sse.next_event().await;
        assert_eq!(event.event, name);
        assert_eq!(event.id, Some(receipt["seq"].to_string()));
        let envelope = event.json();
        assert_eq!(envelope["event"], name);
        for field in ["accountId", "seq", "id", "publishedAt"] {
            assert_eq!(envelope[field], receipt[field], "{field}");
        }
        assert!(envelope["data"].is_object());
    }
}

#[tokio::test]
async fn last_event_id_resumes_exactly_once_and_wins_over_since() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    for i in 0..5 {
        server.publish("acme", "tick", json!({ "i": i })).await;
    }
    let auth = format!("Bearer {token}");
    let mut sse = server
        .sse(
            &format!("{STREAM}?since=4"),
            &[("authorization", &auth), ("last-event-id", "2")],
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(sse.next_event().await.id.unwrap());
    }
    assert_eq!(ids, ["3", "4", "5"]);
    server.publish("acme", "tick", json!({ "i": 5 })).await;
    assert_eq!(sse.next_event().await.id.as_deref(), Some("6"));

    let mut by_query = server
        .sse(&format!("{STREAM}?token={token}&since=5"), &[])
        .await;
    assert_eq!(by_query.next_event().await.id.as_deref(), Some("6"));

    // Resuming from a snapshot's id starts right after what it reflects.
    let mut fresh = server.sse(&format!("{STREAM}?token={token}"), &[]).await;
    let snapshot = fresh.next_event().await;
    assert_eq!(
        (snapshot.event.as_str(), snapshot.id.as_deref()),
        ("snapshot", Some("6"))
    );
    let next = server.publish("acme", "tick", json!({ "i": 6 })).await;
    let mut resumed = server
        .sse(
            &format!("{STREAM}?token={token}"),
            &[("last-event-id", "6")],
        )
        .await;
    let event = resumed.next_event().await;
    assert_eq!(
        event.json()["id"],
        next["id"],
        "no snapshot, no duplicate: {event:?}"
    );
}

#[tokio::test]
async fn keep_alive_comments_flow_while_idle() {
    let server =
        TestServer::start_with(|c| c.limits.ping_interval = Duration::from_millis(50)).await;
    let mut sse = server
        .sse(&format!("{STREAM}?token={}", server.token("acme")), &[])
        .await;
    assert_eq!(sse.next_event().await.event, "snapshot");
    match sse.next_item().await {
        Some(SseItem::Comment(text)) => assert_eq!(text, "keep-alive"),
        other => panic!("expected a keep-alive comment, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_and_the_cross_account_rule() {
    let server = TestServer::start().await;
    let cases = [
        (STREAM.to_owned(), None, 401, "unauthorized"),
        (format!("{STREAM}?token=garbage"), None, 401, "unauthorized"),
        (
            format!("{STREAM}?token={}", server.token("globex")),
            None,
            403,
            "forbidden",
        ),
        (
            STREAM.to_owned(),
            Some(format!("Bearer {}", server.token("globex"))),
            403,
            "forbidden",
        ),
        (
            format!("{STREAM}?token={}", server.token("acme")),
            Some("Bearer wrong".into()),
            401,
            "unauthorized",
        ),
        (
            format!("{STREAM}?token={}&since=x", server.token("acme")),
            None,
            400,
            "bad_request",
        ),
        (
            "/v1/accounts/bad%20id/stream".to_owned(),
            None,
            400,
            "bad_request",
        ),
    ];
    for (path, auth, status, code) in cases {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let response = server.sse_request(&path, &headers).await;
        assert_eq!(response.status(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), code, "{path}");
    }
    let response = server
        .sse_request(
            &format!("{STREAM}?token={}", server.token("acme")),
            &[("last-event-id", "not-a-seq")],
        )
        .await;
    assert_eq!(response.status(), 400);

    // An admin may stream any account; so may a backend with an API key.
    let admin = format!("Bearer {}", server.admin_token());
    let key = format!("Bearer {API_KEY}");
    for auth in [admin, key] {
        let mut sse = server.sse(STREAM, &[("authorization", &auth)]).await;
        assert_eq!(sse.next_event().await.json()["accountId"], "acme");
    }

    // A refused stream received nothing: the forbidden client's own account stream shows only its own events.
    let mut own = server
        .sse(
            &format!(
                "/v1/accounts/globex/stream?token={}",
                server.token("globex")
            ),
            &[],
        )
        .await;
    assert_eq!(own.next_event().await.event, "snapshot");
    server.publish("acme", "not.yours", json!({})).await;
    let mine = server.publish("globex", "yours", json!({})).await;
    assert_eq!(own.next_event().await.json()["id"], mine["id"]);
}
