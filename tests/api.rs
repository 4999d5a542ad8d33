//! The HTTP API against a real server: publishes, reads, credentials,
//! idempotency and every kind of bad input the contract names.

mod common;

use common::{API_KEY, TestServer, error_code};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn phone_test_is_sequenced_persisted_and_in_the_snapshot() {
    let server = TestServer::start().await;
    let first = server.phone_test("acc-1", "p1", false).await;
    let second = server.phone_test("acc-1", "p1", true).await;
    assert_eq!(
        (first["seq"].as_u64(), second["seq"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(second["accountId"], "acc-1");
    assert!(second["id"].as_str().is_some_and(|id| id != first["id"]));

    let events = server.events("acc-1", 0).await;
    assert_eq!(events.len(), 2);
    let last = &events[1];
    assert_eq!(
        (last["event"].as_str(), last["seq"].as_u64()),
        (Some("phone_status_changed"), Some(2))
    );
    assert_eq!(last["id"], second["id"]);
    assert_eq!(last["data"]["status"], "ACTIVE");
    assert_eq!(last["data"]["isActive"], true);

    let (status, snapshot) = server.get("/v1/accounts/acc-1/status", Some(API_KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["seq"], 2);
    assert_eq!(snapshot["phones"]["p1"]["status"], "ACTIVE");
    assert_eq!(snapshot["phones"]["p1"]["phoneNumberId"], "p1");
}

#[tokio::test]
async fn phone_test_fields_follow_the_contract() {
    let server = TestServer::start().await;
    let body = json!({ "phoneNumberId": "p9", "isActive": false, "qualityRating": "GREEN",
        "displayPhoneNumber": "+1 555 0100", "verifiedName": "Acme", "testedAt": "2026-01-02T03:04:05Z" });
    let (status, _) = server.post("/v1/accounts/a/phone-tests", &body).await;
    assert_eq!(status, 201);
    let data = &server.events("a", 0).await[0]["data"];
    assert_eq!(data["status"], "INACTIVE");
    assert_eq!(data["lastTestedAt"], "2026-01-02T03:04:05Z");
    assert_eq!(
        (
            data["qualityRating"].as_str(),
            data["verifiedName"].as_str()
        ),
        (Some("GREEN"), Some("Acme"))
    );
    assert!(data["timestamp"].as_str().is_some_and(|t| t.contains('T')));
}

#[tokio::test]
async fn credential_test_emits_status_sync_with_cache_keys() {
    let server = TestServer::start().await;
    let body =
        json!({ "provider": "binance", "userId": "u7", "success": false, "error": "bad key" });
    assert_eq!(
        server
            .post("/v1/accounts/a/credential-tests", &body)
            .await
            .0,
        201
    );
    let ok = json!({ "provider": "binance", "userId": "u7", "success": true, "requestId": "r1" });
    assert_eq!(
        server.post("/v1/accounts/a/credential-tests", &ok).await.0,
        201
    );
    assert_eq!(
        server.post("/v1/accounts/a/credential-tests", &ok).await.0,
        201
    );
    let events = server.events("a", 0).await;
    let data: Vec<&Value> = events.iter().map(|e| &e["data"]).collect();
    assert!(events.iter().all(|e| e["event"] == "status_sync"));
    assert_eq!(data[0]["error"], "bad key");
    assert_eq!(data[1]["success"], true);
    assert_eq!(
        data[1]["statusRefreshed"], true,
        "failure → success changes the stored status"
    );
    assert_eq!(
        data[2]["statusRefreshed"], false,
        "a repeat changes nothing"
    );
    assert_eq!(data[1]["servicesNotified"], json!([]));
    assert_eq!(data[1]["triggeredBy"], "credential_test");
    assert_eq!(data[1]["cacheInvalidated"], true);
    assert_eq!(
        data[1]["invalidateQueries"][0],
        json!(["credential-status", "u7"])
    );
    assert_eq!(
        data[1]["invalidateQueries"][3],
        json!(["account-balance", "u7", "active"])
    );
    let (_, snapshot) = server.get("/v1/accounts/a/status", Some(API_KEY)).await;
    assert_eq!(snapshot["credentials"]["binance:u7"]["success"], true);
    assert_eq!(snapshot["credentials"]["binance:u7"]["requestId"], "r1");
}

#[tokio::test]
async fn two_users_credentials_for_one_provider_coexist() {
    let server = TestServer::start().await;
    for (user, success) in [("u1", true), ("u2", false)] {
        let body = json!({ "provider": "binance", "userId": user, "success": success });
        assert_eq!(
            server
                .post("/v1/accounts/a/credential-tests", &body)
                .await
                .0,
            201
        );
    }
    let events = server.events("a", 0).await;
    assert_eq!(
        events[1]["data"]["statusRefreshed"], true,
        "another user's first test is a change of its own entry"
    );
    let (_, snapshot) = server.get("/v1/accounts/a/status", Some(API_KEY)).await;
    let credentials = snapshot["credentials"]
        .as_object()
        .expect("credentials map");
    assert_eq!(credentials.len(), 2, "{credentials:?}");
    assert_eq!(credentials["binance:u1"]["success"], true);
    assert_eq!(credentials["binance:u1"]["userId"], "u1");
    assert_eq!(credentials["binance:u2"]["success"], false);
    assert_eq!(credentials["binance:u2"]["userId"], "u2");
}

#[tokio::test]
async fn custom_events_are_published_and_reserved_names_refused() {
    let server = TestServer::start().await;
    let (status, receipt) = server
        .post(
            "/v1/accounts/a/events",
            &json!({ "event": "order.paid", "data": { "n": 1 } }),
        )
        .await;
    assert_eq!((status, receipt["seq"].as_u64()), (201, Some(1)));
    for bad in [
        json!({ "event": "phone_status_changed", "data": {} }),
        json!({ "event": "snapshot", "data": {} }),
        json!({ "event": "Bad Name", "data": {} }),
        json!({ "event": "ok", "data": [1, 2] }),
        json!({ "event": "ok" }),
        json!({ "event": "ok", "data": {}, "extra": true }),
    ] {
        let (status, body) = server.post("/v1/accounts/a/events", &bad).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "bad_request"),
            "{bad} → {body}"
        );
    }
    assert_eq!(
        server.events("a", 0).await.len(),
        1,
        "refused input published nothing"
    );
}

#[tokio::test]
async fn bad_input_is_refused_in_the_contract_shape_and_changes_nothing() {
    let server = TestServer::start().await;
    let url = format!("{}/v1/accounts/a/phone-tests", server.url);
    let send = |body: Vec<u8>, key: Option<&'static str>| {
        let mut request = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let cases: Vec<(Vec<u8>, Option<&str>, u16, &str)> = vec![
        (b"{not json".to_vec(), Some(API_KEY), 400, "bad_request"),
        (
            br#"{"phoneNumberId":"p","isActive":"yes"}"#.to_vec(),
            Some(API_KEY),
            400,
            "bad_request",
        ),
        (
            br#"{"isActive":true}"#.to_vec(),
            Some(API_KEY),
            400,
            "bad_request",
        ),
        (
            br#"{"phoneNumberId":"p","isActive":true,"x":1}"#.to_vec(),
            Some(API_KEY),
            400,
            "bad_request",
        ),
        (
            br#"{"phoneNumberId":"","isActive":true}"#.to_vec(),
            Some(API_KEY),
            400,
            "bad_request",
        ),
        (
            br#"{"phoneNumberId":"p","isActive":true,"testedAt":"yesterday"}"#.to_vec(),
            Some(API_KEY),
            400,
            "bad_request",
        ),
        (vec![b' '; 70 * 1024], Some(API_KEY), 413, "too_large"),
        (
            br#"{"phoneNumberId":"p","isActive":true}"#.to_vec(),
            None,
            401,
            "unauthorized",
        ),
        (
            br#"{"phoneNumberId":"p","isActive":true}"#.to_vec(),
            Some("wrong-key"),
            401,
            "unauthorized",
        ),
    ];
    for (body, key, want_status, want_code) in cases {
        let response = send(body, key).await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "{body}"
        );
    }
    let (status, body) = server
        .post("/v1/accounts/not%20valid/phone-tests", &json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    assert!(
        server.events("a", 0).await.is_empty(),
        "nothing was half-applied"
    );
    let (status, body) = server.get("/v1/nope", None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn reads_need_the_accounts_own_token_or_an_api_key() {
    let server = TestServer::start().await;
    server.phone_test("a", "p1", true).await;
    let own = server.token("a");
    let other = server.token("b");
    assert_eq!(server.get("/v1/accounts/a/status", Some(&own)).await.0, 200);
    assert_eq!(
        server
            .get("/v1/accounts/a/events?since=0", Some(&own))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .get(&format!("/v1/accounts/a/status?token={own}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .get("/v1/accounts/a/status", Some(&server.admin_token()))
            .await
            .0,
        200
    );
    for path in ["/v1/accounts/a/status", "/v1/accounts/a/events?since=0"] {
        let (status, body) = server.get(path, Some(&other)).await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{path}");
        let (status, body) = server.get(path, None).await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{path}");
    }
    let expired = server.jwt.mint("a", "u", None, Duration::from_secs(1));
    let forged =
        statushub::auth::Jwt::new("not-the-secret").mint("a", "u", None, Duration::from_secs(60));
    let (status, body) = server.get("/v1/accounts/a/status", Some(&forged)).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    common::wait_for("token expiry", common::WAIT, || {
        let server = &server;
        let expired = expired.clone();
        async move { server.get("/v1/accounts/a/status", Some(&expired)).await.0 == 401 }
    })
    .await;
    // A client token never publishes.
    let response = server
        .http
        .post(format!("{}/v1/accounts/a/events", server.url))
        .bearer_auth(&own)
        .json(&json!({ "event": "x", "data": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_answer_and_publishes_once() {
    let server = TestServer::start().await;
    let post = |body: Value| {
        server
            .http
            .post(format!("{}/v1/accounts/a/events", server.url))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", "req-42")
            .json(&body)
            .send()
    };
    let body = json!({ "event": "job.done", "data": { "id": 1 } });
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = post(body).await.unwrap();
    assert_eq!(retry.status().as_u16(), 201);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let conflict = post(json!({ "event": "job.done", "data": { "id": 2 } }))
        .await
        .unwrap();
    assert_eq!(conflict.status().as_u16(), 409);
    assert_eq!(
        error_code(&conflict.json().await.unwrap()),
        "idempotency_conflict"
    );
    assert_eq!(server.events("a", 0).await.len(), 1);
}

#[tokio::test]
async fn concurrent_publishes_get_gapless_sequences_per_account() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let server = server.clone();
        let account = if i % 2 == 0 { "even" } else { "odd" };
        tasks.push(tokio::spawn(async move {
            server.phone_test(account, &format!("p{i}"), true).await
        }));
    }
    futures::future::join_all(tasks).await;
    for account in ["even", "odd"] {
        let seqs: Vec<u64> = server
            .events(account, 0)
            .await
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (1..=30).collect::<Vec<_>>(), "{account}");
    }
}

#[tokio::test]
async fn events_since_pages_and_flags_a_reset() {
    let server = TestServer::start_with(|c| c.retention.max_events = 5).await;
    for i in 0..8 {
        server.phone_test("a", &format!("p{i}"), true).await;
    }
    let (_, page) = server
        .get("/v1/accounts/a/events?since=0&limit=2", Some(API_KEY))
        .await;
    assert_eq!(page["reset"], true, "events 1..3 are no longer retained");
    assert_eq!(page["events"][0]["seq"], 4);
    assert_eq!(
        (page["hasMore"].as_bool(), page["seq"].as_u64()),
        (Some(true), Some(8))
    );
    let (_, rest) = server
        .get("/v1/accounts/a/events?since=6", Some(API_KEY))
        .await;
    assert_eq!(
        (rest["reset"].as_bool(), rest["hasMore"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(rest["events"].as_array().map(Vec::len), Some(2));
    let (status, body) = server
        .get("/v1/accounts/a/events?since=-1", Some(API_KEY))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/readyz", None).await.0, 200);
}

#[tokio::test]
async fn restart_keeps_events_and_continues_the_sequence() {
    let server = TestServer::start().await;
    server.phone_test("a", "p1", true).await;
    server.phone_test("a", "p1", false).await;
    let dir = server.stop().await;
    let config = common::test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    assert_eq!(server.phone_test("a", "p1", true).await["seq"], 3);
    assert_eq!(server.events("a", 0).await.len(), 3);
}
