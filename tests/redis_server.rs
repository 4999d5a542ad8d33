//! The hub with `--redis-url`: the same API and transports over the Redis
//! store, a clear start-up error naming the setting, and a Redis outage
//! answered with `503 store_unavailable` in time, then recovered without a
//! restart. Each test runs its own `redis-server`, so its data is its own.

mod common;
mod redis_support;

use common::{API_KEY, TestServer, test_config};
use redis_support::OwnRedis;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_hub_on_redis_publishes_streams_and_resumes() {
    let redis = OwnRedis::start();
    let server = TestServer::start_with(|c| c.redis_url = Some(redis.url())).await;
    let mut ws = server.ws(&format!("?token={}", server.token("acme"))).await;
    let snapshot = ws.next_json().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["data"]["seq"], 0);
    let epoch = snapshot["data"]["epoch"].as_str().unwrap_or("").to_owned();
    assert!(
        !epoch.is_empty(),
        "the snapshot names its epoch: {snapshot}"
    );

    let phone = server.phone_test("acme", "phone-1", true).await;
    let custom = server
        .publish("acme", "deploy.finished", json!({ "n": 1 }))
        .await;
    assert_eq!(
        (phone["seq"].as_u64(), custom["seq"].as_u64()),
        (Some(1), Some(2))
    );
    let frame = ws.next_event().await;
    assert_eq!(
        (frame["seq"].as_u64(), &frame["event"]),
        (Some(1), &json!("phone_status_changed"))
    );
    assert_eq!(ws.next_event().await["data"], json!({ "n": 1 }));

    let (status, history) = server
        .get("/v1/accounts/acme/events?since=1", Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["events"][0]["seq"], 2, "{history}");
    let (status, _) = server.get("/readyz", None).await;
    assert_eq!(status, 200);
    assert!(
        !server.data_dir.path().join("statushub.db").exists(),
        "the data dir is not used in Redis mode"
    );
    let mut again = server.ws(&format!("?token={}", server.token("acme"))).await;
    let snapshot = again.next_json().await;
    assert_eq!(snapshot["data"]["seq"], 2);
    assert_eq!(
        snapshot["data"]["epoch"],
        epoch.as_str(),
        "same epoch while Redis keeps the data"
    );
    assert_eq!(
        snapshot["data"]["phones"]["phone-1"]["isActive"], true,
        "{snapshot}"
    );
}

#[tokio::test]
async fn a_bad_or_unreachable_redis_url_stops_the_start_naming_the_setting() {
    let stopped = OwnRedis::start();
    let unreachable = stopped.url();
    drop(stopped);
    for url in ["not a url".to_owned(), unreachable] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.redis_url = Some(url.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = Instant::now();
        let err = statushub::run(listener, config, std::future::pending())
            .await
            .expect_err("the start must fail");
        assert!(
            err.to_string().contains("STATUSHUB_REDIS_URL"),
            "{url}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url}: took too long"
        );
    }
}

#[tokio::test]
async fn a_redis_outage_answers_503_in_time_and_heals_without_a_restart() {
    let mut redis = OwnRedis::start();
    let server = TestServer::start_with(|c| c.redis_url = Some(redis.url())).await;
    server.publish("acme", "x", json!({})).await;

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = server
            .post(
                "/v1/accounts/acme/events",
                &json!({ "event": "x", "data": {} }),
            )
            .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (503, &json!("store_unavailable")),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "publish took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let (status, _) = server.get("/readyz", None).await;
        assert_eq!(status, 503);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "readyz took {:?}",
            started.elapsed()
        );
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server
            .post(
                "/v1/accounts/acme/events",
                &json!({ "event": "x", "data": {} }),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    let (status, _) = server.get("/readyz", None).await;
    assert_eq!(status, 200);
}
