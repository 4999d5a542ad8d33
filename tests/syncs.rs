//! Sync jobs over HTTP against a real server (SQLite): start, the one
//! running job per kind, progress, cancel, reads, paging, statistics,
//! coalesced events and bad input on every endpoint.

mod common;

use common::{API_KEY, TestServer, error_code};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SYNCS: &str = "/v1/accounts/acc/syncs";

async fn start(server: &TestServer, kind: &str) -> Value {
    let (status, body) = server
        .post(SYNCS, &json!({"kind": kind, "total": 10}))
        .await;
    assert_eq!(status, 201, "start failed: {body}");
    body
}

async fn report(server: &TestServer, id: &str, body: Value) -> (u16, Value) {
    server.post(&format!("{SYNCS}/{id}/progress"), &body).await
}

fn sync_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event"] == "sync_progress")
        .collect()
}

#[tokio::test]
async fn a_sync_starts_reports_completes_and_is_in_the_snapshot() {
    let server = TestServer::start().await;
    let job = start(&server, "orders").await;
    let id = job["syncId"].as_str().expect("syncId").to_owned();
    assert_eq!(job["status"], "running");
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["progress"], json!({"done": 0, "total": 10}));
    assert!(job["startedAt"].as_str().is_some_and(|t| t.contains('T')));

    let (status, body) = report(&server, &id, json!({"done": 4, "results": {"orders": 4}})).await;
    assert_eq!(
        (status, &body["progress"]["done"]),
        (200, &json!(4)),
        "{body}"
    );
    let (status, done) = report(
        &server,
        &id,
        json!({"done": 10, "status": "SUCCESS", "results": {"orders": 9, "claims": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed");
    assert!(done["finishedAt"].is_string());

    let events = server.events("acc", 0).await;
    let syncs = sync_events(&events);
    let statuses: Vec<&str> = syncs
        .iter()
        .filter_map(|e| e["data"]["status"].as_str())
        .collect();
    assert_eq!(statuses.first(), Some(&"running"));
    assert_eq!(statuses.last(), Some(&"completed"), "{statuses:?}");
    assert_eq!(
        syncs.last().unwrap()["data"]["results"],
        json!({"orders": 9, "claims": 1})
    );
    let (_, snapshot) = server.get("/v1/accounts/acc/status", Some(API_KEY)).await;
    assert_eq!(snapshot["jobs"][&id]["status"], "completed");
    assert_eq!(
        snapshot["jobs"][&id]["progress"],
        json!({"done": 10, "total": 10})
    );

    // A finished job is never reopened.
    let (status, body) = report(&server, &id, json!({"done": 1})).await;
    assert_eq!((status, error_code(&body)), (409, "sync_finished"));
    let (_, read) = server.get(&format!("{SYNCS}/{id}"), Some(API_KEY)).await;
    assert_eq!(
        (read["status"].as_str(), read["progress"]["done"].as_u64()),
        (Some("completed"), Some(10))
    );
}

#[tokio::test]
async fn one_running_job_per_kind_even_when_starts_race() {
    let server = TestServer::start().await;
    let body = json!({"kind": "claims"});
    let starts = (0..8).map(|_| server.post(SYNCS, &body));
    let answers = futures::future::join_all(starts).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "exactly one start wins: {answers:?}");
    let id = won[0]["syncId"].as_str().unwrap();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!((*status, error_code(body)), (409, "sync_in_progress"));
        assert_eq!(body["error"]["syncId"], id, "the running job is named");
    }
    // Another kind is independent; the kind frees up when the job ends.
    start(&server, "orders").await;
    let (status, _) = server
        .post(&format!("{SYNCS}/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    start(&server, "claims").await;
}

#[tokio::test]
async fn cancel_without_a_worker_stops_the_next_report() {
    let server = TestServer::start().await;
    let id = start(&server, "orders").await["syncId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .post(&format!("{SYNCS}/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (status, again) = server
        .post(&format!("{SYNCS}/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("cancelled")),
        "cancel is idempotent"
    );
    let (status, body) = report(&server, &id, json!({"done": 3})).await;
    assert_eq!((status, error_code(&body)), (409, "sync_cancelled"));
    let (status, body) = report(&server, &id, json!({"status": "completed"})).await;
    assert_eq!((status, error_code(&body)), (409, "sync_cancelled"));
    let events = server.events("acc", 0).await;
    let last = sync_events(&events)
        .last()
        .cloned()
        .cloned()
        .expect("events");
    assert_eq!(last["data"]["status"], "cancelled");
    assert_eq!(
        last["data"]["progress"]["done"], 0,
        "the refused report changed nothing"
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_start() {
    let server = TestServer::start().await;
    let send = |key: &'static str, kind: &'static str| {
        server
            .http
            .post(format!("{}{SYNCS}", server.url))
            .bearer_auth(API_KEY)
            .header("idempotency-key", key)
            .json(&json!({"kind": kind}))
            .send()
    };
    let first = send("k1", "orders").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("k1", "orders").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["syncId"], first["syncId"]);
    let other = send("k1", "claims").await.unwrap();
    assert_eq!(other.status(), 409);
    let other: Value = other.json().await.unwrap();
    assert_eq!(error_code(&other), "idempotency_conflict");
    let (_, page) = server.get(SYNCS, Some(API_KEY)).await;
    assert_eq!(
        page["syncs"].as_array().map(Vec::len),
        Some(1),
        "one job created"
    );
}

#[tokio::test]
async fn history_is_newest_first_filtered_and_paged() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = start(&server, &format!("k{}", i % 2)).await["syncId"]
            .as_str()
            .unwrap()
            .to_owned();
        let end = if i == 2 { "failed" } else { "completed" };
        let (status, _) = report(&server, &id, json!({"status": end})).await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    ids.reverse();
    let listed = |body: &Value| -> Vec<String> {
        body["syncs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["syncId"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = server.get(SYNCS, Some(API_KEY)).await;
    assert_eq!(listed(&all), ids, "newest first");
    let (_, page1) = server.get(&format!("{SYNCS}?limit=2"), Some(API_KEY)).await;
    assert_eq!(listed(&page1), ids[..2]);
    let cursor = page1["nextBefore"].as_str().unwrap();
    let (_, page2) = server
        .get(&format!("{SYNCS}?limit=2&before={cursor}"), Some(API_KEY))
        .await;
    assert_eq!(listed(&page2), ids[2..4]);
    let (_, failed) = server
        .get(&format!("{SYNCS}?status=error"), Some(API_KEY))
        .await;
    assert_eq!(
        listed(&failed),
        [ids[2].clone()],
        "status aliases filter too"
    );
    let (_, k1) = server.get(&format!("{SYNCS}?kind=k1"), Some(API_KEY)).await;
    assert_eq!(listed(&k1).len(), 2);
    // The account's own token reads; another account's may not.
    let (status, _) = server.get(SYNCS, Some(&server.token("acc"))).await;
    assert_eq!(status, 200);
    let (status, body) = server.get(SYNCS, Some(&server.token("other"))).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
}

#[tokio::test]
async fn stats_are_computed_from_the_jobs_created() {
    let server = TestServer::start().await;
    let plan = [
        ("a", "completed"),
        ("a", "failed"),
        ("b", "completed"),
        ("b", "cancelled"),
        ("a", "completed"),
    ];
    let mut finished_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut durations = Vec::new();
    for (kind, end) in plan {
        let job = start(&server, kind).await;
        let id = job["syncId"].as_str().unwrap().to_owned();
        let (status, body) = report(&server, &id, json!({"status": end})).await;
        assert_eq!(status, 200, "{body}");
        if end == "completed" {
            finished_ids.insert(kind.to_owned(), id);
            let ms = |t: &Value| {
                time::OffsetDateTime::parse(
                    t.as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap()
                .unix_timestamp_nanos()
                    / 1_000_000
            };
            durations.push((ms(&body["finishedAt"]) - ms(&body["startedAt"])) as u64);
        }
    }
    let running = start(&server, "c").await;
    durations.sort();
    let rank =
        |p: f64| durations[((p / 100.0 * durations.len() as f64).ceil() as usize).max(1) - 1];

    let (status, stats) = server.get(&format!("{SYNCS}/stats"), Some(API_KEY)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 6);
    assert_eq!(
        stats["byStatus"],
        json!({"idle": 0, "running": 1, "completed": 3, "failed": 1, "cancelled": 1})
    );
    assert_eq!(stats["byKind"]["a"]["completed"], 2);
    assert_eq!(stats["byKind"]["b"]["cancelled"], 1);
    assert_eq!(stats["successRate"], json!(0.75));
    assert_eq!(
        stats["durationMs"],
        json!({"p50": rank(50.0), "p95": rank(95.0)})
    );
    assert_eq!(stats["lastSuccess"]["a"]["syncId"], finished_ids["a"]);
    assert_eq!(stats["lastSuccess"]["b"]["syncId"], finished_ids["b"]);
    assert_eq!(stats["running"][0]["syncId"], running["syncId"]);
}

#[tokio::test]
async fn a_flood_of_reports_makes_a_bounded_number_of_events_the_last_exact() {
    const REPORTS: u64 = 2_000;
    let server = TestServer::start().await;
    let id = start(&server, "bulk").await["syncId"]
        .as_str()
        .unwrap()
        .to_owned();
    let began = std::time::Instant::now();
    let path = format!("{SYNCS}/{id}/progress");
    // A worker reporting as fast as the hub answers. (Each report is a
    // durable store write; 10,000 of them under controlled time are in the
    // coalescer's own test, `jobs::coalesce`.)
    for done in 0..REPORTS {
        let (status, body) = server
            .post(&path, &json!({"done": done, "total": REPORTS}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = report(
        &server,
        &id,
        json!({"done": REPORTS, "status": "completed"}),
    )
    .await;
    assert_eq!(status, 200);
    let elapsed = began.elapsed();
    let events = server.events("acc", 0).await;
    let syncs = sync_events(&events);
    // One per 250 ms window, plus the start and the end as their own events.
    let bound = (elapsed.as_millis() / 250) as usize + 3;
    assert!(
        syncs.len() <= bound,
        "{} events in {elapsed:?} (bound {bound})",
        syncs.len()
    );
    let last = &syncs.last().unwrap()["data"];
    assert_eq!(
        (last["status"].as_str(), last["progress"]["done"].as_u64()),
        (Some("completed"), Some(REPORTS))
    );
}

#[tokio::test]
async fn bad_input_on_every_endpoint_changes_nothing() {
    let server = TestServer::start().await;
    let id = start(&server, "orders").await["syncId"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = server.events("acc", 0).await.len();
    let bad_posts = [
        (SYNCS.to_owned(), json!({})),
        (SYNCS.to_owned(), json!({"kind": ""})),
        (SYNCS.to_owned(), json!({"kind": "x", "extra": 1})),
        (SYNCS.to_owned(), json!({"kind": "x", "total": -1})),
        (SYNCS.to_owned(), json!({"kind": "x", "staleAfterMs": 1})),
        (
            SYNCS.to_owned(),
            json!({"kind": "x", "retry": {"maxAttempts": 2}}),
        ),
        (SYNCS.to_owned(), json!({"kind": "x", "metadata": [1]})),
        (format!("{SYNCS}/{id}/progress"), json!({"status": "done"})),
        (format!("{SYNCS}/{id}/progress"), json!({"done": 11})),
        (format!("{SYNCS}/{id}/progress"), json!({"done": "1"})),
        (format!("{SYNCS}/{id}/progress"), json!({"results": 3})),
        (format!("{SYNCS}/{id}/progress"), json!([])),
        ("/v1/accounts/a b/syncs".to_owned(), json!({"kind": "x"})),
        (format!("{SYNCS}/bad%20id/progress"), json!({})),
        (format!("{SYNCS}/bad%20id/cancel"), json!({})),
    ];
    for (path, body) in &bad_posts {
        let (status, answer) = server.post(path, body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{path} {body}: {answer}"
        );
    }
    let bad_gets = [
        format!("{SYNCS}?status=bogus"),
        format!("{SYNCS}?limit=0"),
        format!("{SYNCS}?limit=x"),
        format!("{SYNCS}?kind=a%20b"),
        format!("{SYNCS}?due=maybe"),
        format!("{SYNCS}?before=a%2Fb"),
        format!("{SYNCS}?what=1"),
        format!("{SYNCS}/stats?x=1"),
        format!("{SYNCS}/bad%20id"),
    ];
    for path in &bad_gets {
        let (status, answer) = server.get(path, Some(API_KEY)).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{path}: {answer}"
        );
    }
    let (status, answer) = server
        .get(&format!("{SYNCS}/sync_nope"), Some(API_KEY))
        .await;
    assert_eq!((status, error_code(&answer)), (404, "not_found"));
    let (status, answer) = server
        .post(&format!("{SYNCS}/sync_nope/cancel"), &json!({}))
        .await;
    assert_eq!((status, error_code(&answer)), (404, "not_found"));
    // Credentials: none, a wrong key, a client token for a write.
    let token = server.token("acc");
    for credential in [None, Some("wrong"), Some(token.as_str())] {
        let (status, answer) = server
            .request(
                reqwest::Method::POST,
                SYNCS,
                Some(&json!({"kind": "y"})),
                credential,
            )
            .await;
        assert_eq!(
            (status, error_code(&answer)),
            (401, "unauthorized"),
            "{credential:?}"
        );
    }
    assert_eq!(
        server.events("acc", 0).await.len(),
        before,
        "nothing was published"
    );
    let (_, job) = server.get(&format!("{SYNCS}/{id}"), Some(API_KEY)).await;
    assert_eq!(
        (job["status"].as_str(), job["progress"]["done"].as_u64()),
        (Some("running"), Some(0))
    );
    let (_, page) = server.get(SYNCS, Some(API_KEY)).await;
    assert_eq!(
        page["syncs"].as_array().map(Vec::len),
        Some(1),
        "no job was created"
    );
}

#[tokio::test]
async fn the_servers_sweeper_fails_a_job_whose_worker_went_silent() {
    let server = TestServer::start().await;
    let (status, job) = server
        .post(SYNCS, &json!({"kind": "orders", "staleAfterMs": 1000}))
        .await;
    assert_eq!(status, 201, "{job}");
    let path = format!("{SYNCS}/{}", job["syncId"].as_str().unwrap());
    common::wait_for(
        "the sweeper to fail the silent job",
        common::WAIT,
        || async { server.get(&path, Some(API_KEY)).await.1["status"] == "failed" },
    )
    .await;
    let (_, failed) = server.get(&path, Some(API_KEY)).await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("stale: no progress for 1s"), "{error}");
    // The kind is free again.
    start(&server, "orders").await;
}

#[tokio::test]
async fn a_due_retry_is_announced_as_sync_retry_to_subscribed_webhooks() {
    let server = TestServer::start().await;
    // A receiver that is never called: the delivery is queued in the same
    // step as the event, which is what this test looks at.
    let (status, _) = server
        .put(
            "/v1/webhooks/workers",
            &json!({"url": "http://127.0.0.1:9/retry", "events": ["sync.*"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, job) = server
        .post(
            SYNCS,
            &json!({"kind": "orders", "retry": {"maxAttempts": 2, "backoffMs": 100, "backoffMultiplier": 1}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["syncId"].as_str().unwrap().to_owned();
    let (status, body) = report(
        &server,
        &id,
        json!({"status": "error", "error": "boom", "checkpoint": {"page": 3}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let path = format!("{SYNCS}/{id}");
    common::wait_for("the sweeper to re-run the job", common::WAIT, || async {
        server.get(&path, Some(API_KEY)).await.1["attempt"] == 2
    })
    .await;
    // The announcement follows the stored re-run.
    common::wait_for("sync.retry", common::WAIT, || async {
        server
            .events("acc", 0)
            .await
            .iter()
            .any(|e| e["event"] == "sync.retry")
    })
    .await;
    let retries: Vec<Value> = server
        .events("acc", 0)
        .await
        .into_iter()
        .filter(|e| e["event"] == "sync.retry")
        .collect();
    assert_eq!(
        retries.len(),
        1,
        "one announcement per attempt: {retries:?}"
    );
    assert_eq!(
        retries[0]["data"],
        json!({"syncId": id, "kind": "orders", "attempt": 2, "hasCheckpoint": true})
    );
    let (_, deliveries) = server
        .get("/v1/webhooks/workers/deliveries", Some(API_KEY))
        .await;
    let events: Vec<&str> = deliveries["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    assert!(events.contains(&"sync.retry"), "{deliveries}");
}
