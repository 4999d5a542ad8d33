//! Monitor history, uptime and stats end to end: a real hub checks a real
//! endpoint on 127.0.0.1 that answers a script the test wrote, and every
//! figure the API gives is compared with what the test computes from the
//! answers its endpoint gave.
//!
//! No clock is faked: the script ends with two failures, and the backoff
//! (multiplier 10) then puts the next check 10 s away, so the history holds
//! still while the test reads it; the endpoint's hit count proves it did.

mod common;
mod redis_support;

use axum::{Router, extract::State, http::StatusCode};
use common::{API_KEY, TestServer, WAIT, error_code, wait_for};
use serde_json::{Value, json};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};
use tokio::net::TcpListener;

/// Answers the scripted statuses one per request, then 500; records each.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<VecDeque<u16>>>,
    answered: Arc<Mutex<Vec<u16>>>,
}

async fn answer(State(s): State<Scripted>) -> StatusCode {
    let status = s.script.lock().unwrap().pop_front().unwrap_or(500);
    s.answered.lock().unwrap().push(status);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn endpoint(script: &[u16]) -> (String, Scripted) {
    let scripted = Scripted::default();
    scripted.script.lock().unwrap().extend(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let app = Router::new().fallback(answer).with_state(scripted.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, scripted)
}

fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((p * n).div_ceil(100)).max(1) - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_uptime_and_stats_match_the_checks_the_test_caused() {
    figures_match_the_checks(&TestServer::start().await).await;
}

/// The same in cluster mode: the history lives in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_the_figures_match_too() {
    let prefix = redis_support::Prefix::fresh();
    let server = TestServer::start_with(|config| {
        config.redis_url = Some(redis_support::SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await;
    figures_match_the_checks(&server).await;
}

async fn figures_match_the_checks(server: &TestServer) {
    let script = [200, 200, 200, 200, 500, 200, 200, 200, 500, 500];
    let (url, endpoint) = endpoint(&script).await;
    let spec = json!({ "url": url, "intervalMs": 100, "timeoutMs": 90,
                       "maxRetries": 0, "backoffMultiplier": 10.0 });
    let (status, body) = server.put("/v1/accounts/acme/monitors/api", &spec).await;
    assert_eq!(status, 201, "{body}");

    let history_path = "/v1/accounts/acme/monitors/api/history";
    wait_for("ten checks in the history", WAIT, || async {
        let (_, page) = server.get(history_path, Some(API_KEY)).await;
        page["checks"].as_array().map_or(0, Vec::len) >= script.len()
    })
    .await;
    let (status, page) = server.get(history_path, Some(API_KEY)).await;
    let (_, uptime) = server
        .get("/v1/accounts/acme/monitors/api/uptime", Some(API_KEY))
        .await;
    let (_, stats) = server
        .get("/v1/accounts/acme/monitors/stats", Some(API_KEY))
        .await;
    let answered = endpoint.answered.lock().unwrap().clone();
    assert_eq!(
        answered, script,
        "the endpoint answered its script and nothing more while the test read"
    );
    assert_eq!(status, 200, "{page}");

    // Every check, in order, as the endpoint answered it.
    let checks = page["checks"].as_array().unwrap();
    let statuses: Vec<u64> = checks
        .iter()
        .map(|c| c["httpStatus"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        answered.iter().map(|s| u64::from(*s)).collect::<Vec<_>>()
    );
    for (check, status) in checks.iter().zip(&answered) {
        assert_eq!(check["ok"], *status == 200, "{check}");
        assert_eq!(
            check["health"],
            if *status == 200 {
                "healthy"
            } else {
                "unhealthy"
            },
            "no retries: each check decides the health"
        );
    }
    let kinds: Vec<&str> = page["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["status_change", "error_state", "recovery", "error_state"]
    );
    assert!(page["buckets"].as_array().unwrap().is_empty());

    // Uptime: passed over checks, the same in every window.
    let passed = answered.iter().filter(|s| **s == 200).count();
    let expected = 100.0 * passed as f64 / answered.len() as f64;
    for window in ["24h", "7d", "30d"] {
        assert_eq!(
            uptime["uptime"][window].as_f64(),
            Some(expected),
            "{uptime}"
        );
        assert_eq!(uptime["checks"][window], answered.len(), "{uptime}");
    }
    let mut latencies: Vec<u64> = checks
        .iter()
        .filter(|c| c["ok"] == true)
        .map(|c| c["latencyMs"].as_u64().unwrap())
        .collect();
    latencies.sort_unstable();
    assert_eq!(
        uptime["latencyMs"]["p50"].as_u64(),
        nearest_rank(&latencies, 50)
    );
    assert_eq!(
        uptime["latencyMs"]["p95"].as_u64(),
        nearest_rank(&latencies, 95)
    );

    assert_eq!(
        stats,
        json!({ "accountId": "acme", "monitors": 1, "healthy": 0, "unhealthy": 1,
                "unknown": 0, "transitions24h": 4, "checks24h": answered.len() })
    );

    // A range: from the first failure to the last of the passes after it.
    let from = checks[4]["at"].as_str().unwrap();
    let to = checks[7]["at"].as_str().unwrap();
    let query = format!("{history_path}?from={from}&to={to}");
    let (status, part) = server.get(&query, Some(API_KEY)).await;
    assert_eq!(status, 200, "{part}");
    assert_eq!(part["checks"].as_array().unwrap()[..], checks[4..8]);
    let kinds: Vec<&str> = part["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["error_state", "recovery"]);
    let (_, newest) = server
        .get(&format!("{history_path}?limit=2"), Some(API_KEY))
        .await;
    assert_eq!(newest["checks"].as_array().unwrap()[..], checks[8..]);

    // The account's token reads too, in the header or the query.
    let token = server.token("acme");
    let (status, _) = server.get(history_path, Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .get(
            &format!("/v1/accounts/acme/monitors/api/uptime?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        endpoint.answered.lock().unwrap().len(),
        script.len(),
        "still no other check: the figures above were of a still history"
    );
}

#[tokio::test]
async fn bad_queries_and_credentials_get_the_contracts_errors() {
    let server = TestServer::start().await;
    let (url, _endpoint) = endpoint(&[]).await;
    let spec = json!({ "url": url, "intervalMs": 60000, "timeoutMs": 1000,
                       "maxRetries": 0, "backoffMultiplier": 1.0 });
    let (status, _) = server.put("/v1/accounts/acme/monitors/api", &spec).await;
    assert_eq!(status, 201);
    let base = "/v1/accounts/acme/monitors/api";
    let cases: [(String, Option<String>, u16, &str); 11] = [
        (
            format!("{base}/history?from=yesterday"),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (
            format!("{base}/history?to=-5"),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (
            format!("{base}/history?from=2000&to=1000"),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (
            format!("{base}/history?limit=0"),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (
            format!("{base}/uptime?window=1d"),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (
            "/v1/accounts/acme/monitors/stats?x=1".into(),
            Some(API_KEY.into()),
            400,
            "bad_request",
        ),
        (format!("{base}/history"), None, 401, "unauthorized"),
        (
            format!("{base}/uptime"),
            Some(server.token("other")),
            403,
            "forbidden",
        ),
        (
            "/v1/accounts/other/monitors/stats".into(),
            Some(server.token("acme")),
            403,
            "forbidden",
        ),
        (
            "/v1/accounts/acme/monitors/nope/uptime".into(),
            Some(API_KEY.into()),
            404,
            "not_found",
        ),
        (
            "/v1/accounts/acme/monitors/nope/history".into(),
            Some(API_KEY.into()),
            404,
            "not_found",
        ),
    ];
    for (path, credential, status, code) in cases {
        let (got, body): (u16, Value) = server.get(&path, credential.as_deref()).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(error_code(&body), code, "{path}");
    }
    // Times as RFC 3339 or as milliseconds.
    let (status, page) = server
        .get(
            &format!("{base}/history?from=0&to=2026-11-30T12:00:00Z"),
            Some(API_KEY),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["from"], "1970-01-01T00:00:00Z");
    assert_eq!(page["to"], "2026-11-30T12:00:00Z");
    // A monitor without checks has no uptime yet.
    let (_, uptime) = server
        .get("/v1/accounts/acme/monitors/nope2/uptime", Some(API_KEY))
        .await;
    assert_eq!(error_code(&uptime), "not_found");

    // A deleted monitor's history goes with it.
    wait_for("the first check", WAIT, || async {
        let (_, stats) = server
            .get("/v1/accounts/acme/monitors/stats", Some(API_KEY))
            .await;
        stats["checks24h"].as_u64() >= Some(1)
    })
    .await;
    let (status, _) = server.delete(base).await;
    assert_eq!(status, 204);
    let (_, stats) = server
        .get("/v1/accounts/acme/monitors/stats", Some(API_KEY))
        .await;
    assert_eq!(stats["monitors"], 0);
    assert_eq!(stats["checks24h"], 0, "{stats}");
}
