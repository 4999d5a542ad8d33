//! Outbound webhooks end to end: a real server (real SQLite), real receivers
//! on 127.0.0.1, and the dispatcher's clock moved by hand through the
//! backoff schedule (no sleeping).

mod common;
mod webhook_support;

use common::{API_KEY, TestServer, WAIT, error_code, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use webhook_support::{Answer, Receiver, TestClock, verify};

async fn server(clock: &TestClock) -> TestServer {
    let clock = clock.clock();
    TestServer::start_with(move |c| c.webhooks.clock = clock).await
}

/// Creates an endpoint and returns its secret.
async fn subscribe(server: &TestServer, path: &str, url: &str, events: Value) -> String {
    let (status, body) = server
        .put(path, &json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("a secret").to_owned()
}

async fn pending(server: &TestServer) -> Vec<Value> {
    let (_, list) = server
        .get("/v1/webhooks/h/deliveries?status=pending", Some(API_KEY))
        .await;
    list["deliveries"].as_array().unwrap().clone()
}

async fn credential_test(server: &TestServer, account: &str) -> (u16, Value) {
    server
        .post(
            &format!("/v1/accounts/{account}/credential-tests"),
            &json!({"provider": "stripe", "userId": "u1", "success": true}),
        )
        .await
}

#[tokio::test]
async fn endpoints_are_registered_read_and_deleted_and_the_secret_shown_once() {
    let server = TestServer::start().await;
    let spec = json!({"url": "http://127.0.0.1:9/x", "events": ["status_sync", "deploy.*"], "description": "orders"});
    let (status, created) = server.put("/v1/webhooks/orders", &spec).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 6 + 32,
        "{secret}"
    );
    assert_eq!(created["accountId"], Value::Null);
    assert_eq!(created["enabled"], true);

    let (status, read) = server.get("/v1/webhooks/orders", Some(API_KEY)).await;
    assert_eq!(status, 200);
    assert!(read.get("secret").is_none(), "{read}");
    assert_eq!(read["events"], json!(["status_sync", "deploy.*"]));

    let (status, updated) = server
        .put(
            "/v1/webhooks/orders",
            &json!({"url": "https://example.com/h", "events": ["*"], "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated.get("secret").is_none());
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(updated["enabled"], false);

    let (status, mine) = server
        .put(
            "/v1/accounts/acme/webhooks/acme-hook",
            &json!({"url": "http://10.0.0.1/h", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["accountId"], "acme");
    // One id, one endpoint: the other scope cannot take it.
    let (status, body) = server
        .put(
            "/v1/accounts/acme/webhooks/orders",
            &json!({"url": "http://a/", "events": ["*"]}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "webhook_id_taken"));
    let (status, _) = server
        .get("/v1/accounts/acme/webhooks/orders", Some(API_KEY))
        .await;
    assert_eq!(status, 404, "another scope's endpoint is not found here");

    let (_, all) = server.get("/v1/webhooks", Some(API_KEY)).await;
    let ids: Vec<&str> = all["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-hook", "orders"]);
    let (_, acme) = server
        .get("/v1/accounts/acme/webhooks", Some(API_KEY))
        .await;
    assert_eq!(acme["webhooks"].as_array().unwrap().len(), 1);
    assert!(
        all.to_string().find("whsec_").is_none(),
        "lists never show secrets"
    );

    let (status, _) = server.delete("/v1/webhooks/orders").await;
    assert_eq!(status, 204);
    let (status, body) = server.delete("/v1/webhooks/orders").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_error_shape_and_changes_nothing() {
    let server = TestServer::start().await;
    let ok = json!({"url": "http://127.0.0.1:9/x", "events": ["status_sync"]});
    let bad_bodies = [
        json!({"url": "http://127.0.0.1:9/x", "events": ["status_sync"], "secret": "mine"}),
        json!({"url": "ftp://x/", "events": ["a"]}),
        json!({"url": "not a url", "events": ["a"]}),
        json!({"url": "http://x/", "events": []}),
        json!({"url": "http://x/", "events": ["Bad"]}),
        json!({"url": "http://x/", "events": ["de*ploy"]}),
        json!({"url": "http://x/", "events": "status_sync"}),
        json!({"events": ["a"]}),
        json!([]),
    ];
    for body in &bad_bodies {
        let (status, answer) = server.put("/v1/webhooks/w1", body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{body}"
        );
    }
    for path in [
        "/v1/webhooks/a%2Fb",
        "/v1/webhooks/...",
        "/v1/webhooks/a%20b",
        "/v1/webhooks/%FF",
        "/v1/accounts/a%20b/webhooks/w1",
    ] {
        let (status, answer) = server.put(path, &ok).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{path}"
        );
    }
    let token = server.token("acme");
    for credential in [None, Some("wrong-key"), Some(token.as_str())] {
        let (status, answer) = server
            .request(
                Method::PUT,
                "/v1/accounts/acme/webhooks/w1",
                Some(&ok),
                credential,
            )
            .await;
        assert_eq!((status, error_code(&answer)), (401, "unauthorized"));
        let (status, _) = server.get("/v1/webhooks", credential).await;
        assert_eq!(status, 401);
    }
    for query in ["status=sent", "limit=0", "limit=1001", "nope=1"] {
        let (status, answer) = server
            .get(
                &format!("/v1/webhooks/w1/deliveries?{query}"),
                Some(API_KEY),
            )
            .await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{query}"
        );
    }
    let (status, answer) = server.post("/v1/webhooks/w1/test", &json!({})).await;
    assert_eq!((status, error_code(&answer)), (404, "not_found"));
    let (_, all) = server.get("/v1/webhooks", Some(API_KEY)).await;
    assert_eq!(all["webhooks"], json!([]), "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn services_notified_lists_exactly_the_subscribed_endpoints() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let url = "http://127.0.0.1:9/unused";
    subscribe(
        &server,
        "/v1/webhooks/all-sync",
        url,
        json!(["status_sync"]),
    )
    .await;
    subscribe(
        &server,
        "/v1/accounts/acme/webhooks/acme-all",
        url,
        json!(["*"]),
    )
    .await;
    subscribe(
        &server,
        "/v1/accounts/other/webhooks/other-sync",
        url,
        json!(["status_sync"]),
    )
    .await;
    subscribe(&server, "/v1/webhooks/deploys", url, json!(["deploy.*"])).await;
    let (status, _) = server
        .put(
            "/v1/webhooks/off",
            &json!({"url": url, "events": ["*"], "enabled": false}),
        )
        .await;
    assert_eq!(status, 201);

    let (status, receipt) = credential_test(&server, "acme").await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["servicesNotified"], json!(["acme-all", "all-sync"]));
    assert!(receipt["seq"].is_u64() && receipt["id"].is_string());
    let events = server.events("acme", 0).await;
    assert_eq!(
        events[0]["data"]["servicesNotified"],
        json!(["acme-all", "all-sync"])
    );
    let (_, snapshot) = server.get("/v1/accounts/acme/status", Some(API_KEY)).await;
    assert_eq!(
        snapshot["credentials"]["stripe:u1"]["servicesNotified"],
        json!(["acme-all", "all-sync"])
    );

    let (_, receipt) = credential_test(&server, "nobody").await;
    assert_eq!(receipt["servicesNotified"], json!(["all-sync"]));

    // Each is queued exactly there: the deliveries of each endpoint.
    for (endpoint, expected) in [("all-sync", 2), ("deploys", 0), ("off", 0)] {
        let (_, list) = server
            .get(
                &format!("/v1/webhooks/{endpoint}/deliveries"),
                Some(API_KEY),
            )
            .await;
        assert_eq!(
            list["deliveries"].as_array().unwrap().len(),
            expected,
            "{endpoint}: {list}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn deliveries_are_signed_envelopes_in_seq_order() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    let secret = subscribe(
        &server,
        "/v1/accounts/acme/webhooks/h1",
        &receiver.url(),
        json!(["deploy.*"]),
    )
    .await;
    for n in 0..5 {
        server.publish("acme", "deploy.done", json!({"n": n})).await;
    }
    server.publish("acme", "other", json!({})).await;
    wait_for("5 deliveries", WAIT, || async {
        receiver.delivered().len() >= 5
    })
    .await;

    let events = server.events("acme", 0).await;
    let hits = receiver.delivered();
    assert_eq!(hits.len(), 5);
    for (hit, event) in hits.iter().zip(&events) {
        assert_eq!(hit.json(), *event, "the body is the envelope");
        assert_eq!(hit.header("webhook-id"), event["id"].as_str().unwrap());
        assert!(verify(&secret, hit), "signature verifies");
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", hit));
        assert_eq!(hit.header("content-type"), "application/json");
        assert!(hit.header("user-agent").contains("statushub"));
        let ts: i64 = hit.header("webhook-timestamp").parse().unwrap();
        assert!((ts - clock.now_ms() / 1000).abs() < 60);
    }
    let seqs: Vec<u64> = hits
        .iter()
        .map(|h| h.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    let (_, list) = server
        .get(
            "/v1/accounts/acme/webhooks/h1/deliveries?status=delivered&limit=2",
            Some(API_KEY),
        )
        .await;
    let list = list["deliveries"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["seq"], 5, "newest first");
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["lastStatus"], 200);
    assert_eq!(list[0]["nextAttemptAt"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn a_receiver_down_gets_every_event_once_in_order_after_the_backoff() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    receiver.set_down(true);
    subscribe(&server, "/v1/webhooks/h", &receiver.url(), json!(["*"])).await;
    for n in 0..5 {
        server.publish("acme", "job.done", json!({"n": n})).await;
    }
    wait_for("the first attempt", WAIT, || async {
        !receiver.hits().is_empty()
    })
    .await;
    wait_for("the failure recorded", WAIT, || async {
        pending(&server).await.iter().any(|d| d["attempts"] == 1)
    })
    .await;
    // Only the head was tried: seq 2..5 wait behind seq 1.
    assert!(receiver.hits().iter().all(|h| h.json()["seq"] == 1));
    let first = pending(&server)
        .await
        .into_iter()
        .find(|d| d["seq"] == 1)
        .unwrap();
    assert_eq!(first["lastStatus"], 503);

    // Due again after 5 s (plus jitter): still down.
    clock.advance(Duration::from_secs(6));
    wait_for("the second attempt", WAIT, || async {
        receiver.hits().len() >= 2
    })
    .await;
    wait_for("it recorded", WAIT, || async {
        pending(&server).await.iter().any(|d| d["attempts"] == 2)
    })
    .await;
    assert_eq!(
        receiver.hits().len(),
        2,
        "nothing is tried before it is due"
    );

    receiver.set_down(false);
    clock.advance(Duration::from_secs(70));
    wait_for("every event", WAIT, || async {
        receiver.delivered().len() >= 5
    })
    .await;
    let seqs: Vec<u64> = receiver
        .delivered()
        .iter()
        .map(|h| h.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "once each, in order");
    wait_for("nothing pending", WAIT, || async {
        pending(&server).await.is_empty()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer(429, Some(120))]);
    subscribe(&server, "/v1/webhooks/h", &receiver.url(), json!(["*"])).await;
    server.publish("acme", "ping", json!({})).await;
    let delivery = || async {
        let (_, list) = server.get("/v1/webhooks/h/deliveries", Some(API_KEY)).await;
        list["deliveries"][0].clone()
    };
    wait_for("the 429 recorded", WAIT, || async {
        delivery().await["lastStatus"] == 429
    })
    .await;
    let d = delivery().await;
    let next = time::OffsetDateTime::parse(
        d["nextAttemptAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait_ms = (next.unix_timestamp_nanos() / 1_000_000) as i64 - clock.now_ms();
    assert!(
        (115_000..=121_000).contains(&wait_ms),
        "next attempt in {wait_ms} ms, not the 5 s step"
    );

    clock.advance(Duration::from_secs(121));
    wait_for("delivered after Retry-After", WAIT, || async {
        receiver.delivered().len() == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn one_stuck_receiver_does_not_delay_a_healthy_one() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let stuck = Receiver::start().await;
    stuck.set_stuck(true);
    let healthy = Receiver::start().await;
    subscribe(&server, "/v1/webhooks/stuck", &stuck.url(), json!(["*"])).await;
    subscribe(
        &server,
        "/v1/webhooks/healthy",
        &healthy.url(),
        json!(["*"]),
    )
    .await;
    for account in ["a", "b", "c", "d", "e", "f"] {
        for n in 0..3 {
            server.publish(account, "tick", json!({"n": n})).await;
        }
    }
    wait_for("every event at the healthy one", WAIT, || async {
        healthy.delivered().len() >= 18
    })
    .await;
    // The stuck one holds at most its per-endpoint slots (4), one per account.
    let held = stuck.hits();
    assert!(
        !held.is_empty() && held.len() <= 4,
        "{} requests held",
        held.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn test_event_retry_and_metrics() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    let secret = subscribe(
        &server,
        "/v1/accounts/acme/webhooks/h",
        &receiver.url(),
        json!(["status_sync"]),
    )
    .await;
    let (status, queued) = server
        .post("/v1/accounts/acme/webhooks/h/test", &json!({}))
        .await;
    assert_eq!(status, 202, "{queued}");
    wait_for("the test event", WAIT, || async {
        receiver.delivered().len() == 1
    })
    .await;
    let hit = &receiver.delivered()[0];
    assert_eq!(hit.json()["event"], "webhook.test");
    assert_eq!(
        hit.header("webhook-id"),
        queued["eventId"].as_str().unwrap()
    );
    assert!(verify(&secret, hit));

    let path = format!(
        "/v1/accounts/acme/webhooks/h/deliveries/{}/retry",
        queued["id"].as_str().unwrap()
    );
    let (status, again) = server.post(&path, &json!({})).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (202, Some("pending")),
        "{again}"
    );
    wait_for("sent again", WAIT, || async {
        receiver.delivered().len() == 2
    })
    .await;
    assert_eq!(
        receiver.delivered()[1].header("webhook-id"),
        hit.header("webhook-id")
    );
    let (status, body) = server
        .post(
            "/v1/accounts/acme/webhooks/h/deliveries/dlv_nope/retry",
            &json!({}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));

    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("statushub_webhook_attempts_total{outcome=\"delivered\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("statushub_webhook_outbox_pending 0"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_for_24_hours() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    let old = subscribe(&server, "/v1/webhooks/h", &receiver.url(), json!(["*"])).await;
    let (status, rotated) = server
        .post("/v1/webhooks/h/rotate-secret", &json!({}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let (_, read) = server.get("/v1/webhooks/h", Some(API_KEY)).await;
    assert!(read.to_string().find("whsec_").is_none(), "{read}");

    server.publish("acme", "one", json!({})).await;
    wait_for("the first delivery", WAIT, || async {
        receiver.delivered().len() == 1
    })
    .await;
    let hit = &receiver.delivered()[0];
    assert!(
        verify(&new, hit) && verify(&old, hit),
        "both sign during the overlap"
    );
    assert_eq!(hit.header("webhook-signature").split(' ').count(), 2);

    clock.advance(Duration::from_secs(24 * 3600 + 60));
    server.publish("acme", "two", json!({})).await;
    wait_for("the second delivery", WAIT, || async {
        receiver.delivered().len() == 2
    })
    .await;
    let hit = &receiver.delivered()[1];
    assert!(
        verify(&new, hit) && !verify(&old, hit),
        "the old one no longer signs"
    );
    let (status, body) = server
        .post("/v1/accounts/acme/webhooks/h/rotate-secret", &json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    server.stop().await;
}

async fn metrics(server: &TestServer) -> String {
    let url = format!("{}/metrics", server.url);
    server
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_circuit_opens_probes_closes_and_a_day_of_failure_disables() {
    let clock = TestClock::default();
    let server = server(&clock).await;
    let receiver = Receiver::start().await;
    receiver.set_down(true);
    subscribe(&server, "/v1/webhooks/h", &receiver.url(), json!(["*"])).await;
    // Five accounts, five heads, five failures in a row: the circuit opens.
    for account in ["a1", "a2", "a3", "a4", "a5"] {
        server.publish(account, "tick", json!({})).await;
    }
    wait_for("the circuit open", WAIT, || async {
        metrics(&server)
            .await
            .contains("statushub_webhook_circuits{state=\"open\"} 1")
    })
    .await;
    // A new, due delivery is held, not attempted.
    server.publish("a6", "tick", json!({})).await;
    wait_for("a delivery held", WAIT, || async {
        !metrics(&server)
            .await
            .contains("statushub_webhook_held_total 0")
    })
    .await;
    assert_eq!(receiver.hits().len(), 5, "nothing hammers an open circuit");

    // After the cool-down one probe goes; it succeeds and the circuit closes.
    receiver.set_down(false);
    clock.advance(Duration::from_secs(61));
    wait_for("everything delivered", WAIT, || async {
        receiver.delivered().len() == 6
    })
    .await;
    assert!(
        metrics(&server)
            .await
            .contains("statushub_webhook_circuits{state=\"open\"} 0")
    );

    // Failing for a whole day disables the endpoint and says so.
    receiver.set_down(true);
    for account in ["b1", "b2", "b3", "b4", "b5"] {
        server.publish(account, "tick", json!({})).await;
    }
    wait_for("open again", WAIT, || async {
        metrics(&server)
            .await
            .contains("statushub_webhook_circuits{state=\"open\"} 1")
    })
    .await;
    clock.advance(Duration::from_secs(25 * 3600));
    wait_for("disabled", WAIT, || async {
        let (_, read) = server.get("/v1/webhooks/h", Some(API_KEY)).await;
        read["enabled"] == false && read["note"] == "webhook_disabled"
    })
    .await;
    // A put enables it again and clears the note.
    let (status, put) = server
        .put(
            "/v1/webhooks/h",
            &json!({"url": receiver.url(), "events": ["*"]}),
        )
        .await;
    assert_eq!(
        (status, &put["enabled"], put.get("note")),
        (200, &json!(true), None)
    );
    server.stop().await;
}

#[tokio::test]
async fn outbound_deny_private_refuses_private_destinations_after_resolution() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| {
        c.webhooks.deny_private = true;
        c.monitors.deny_private = true;
    })
    .await;
    // An IP literal is refused at once.
    let (status, body) = server
        .put(
            "/v1/webhooks/lit",
            &json!({"url": receiver.url(), "events": ["*"]}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"), "{body}");
    // A name is checked on what it resolves to: localhost is loopback.
    let port = receiver.addr.unwrap().port();
    let url = format!("http://localhost:{port}/hook");
    subscribe(&server, "/v1/webhooks/named", &url, json!(["*"])).await;
    server.publish("acme", "x", json!({})).await;
    wait_for("the refused attempt", WAIT, || async {
        let (_, list) = server
            .get("/v1/webhooks/named/deliveries", Some(API_KEY))
            .await;
        list["deliveries"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("--outbound-deny-private"))
    })
    .await;
    assert!(
        receiver.hits().is_empty(),
        "nothing reached the private address"
    );
    server.stop().await;
}
