//! Heartbeat monitors end to end: a real hub checking real HTTP endpoints on
//! loopback that answer 200, answer 500, hang past the timeout or refuse
//! connections, and switch between them. Every wait is on a condition (an
//! event arriving, an endpoint counting hits); nothing sleeps and hopes.

mod common;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
};
use common::{API_KEY, TestServer, WAIT, error_code, test_config, wait_for};
use serde_json::{Value, json};
use std::{
    collections::{HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, task::JoinHandle};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Fail,
    /// Never answers: the monitor's timeout ends the check.
    Hang,
    /// Answers 200 after 50 ms, so checks overlap.
    Slow,
}

/// What an endpoint saw.
#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    now: AtomicUsize,
    max_concurrent: AtomicUsize,
    at: Mutex<Vec<Instant>>,
    paths: Mutex<HashSet<String>>,
    last_request: Mutex<Option<(Method, Option<String>)>>,
}

#[derive(Clone)]
struct Behaviour {
    mode: Arc<Mutex<Mode>>,
    /// Answers used first, one per hit, before `mode` applies again.
    script: Arc<Mutex<VecDeque<Mode>>>,
    seen: Arc<Seen>,
}

/// A small HTTP server on 127.0.0.1 whose answer the test switches, and
/// which can stop listening (connections refused) and listen again on the
/// same port.
struct Endpoint {
    addr: SocketAddr,
    behaviour: Behaviour,
    task: Option<JoinHandle<()>>,
}

/// Keeps the endpoint's concurrency count right however a request ends.
struct InFlight(Arc<Seen>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(
    State(b): State<Behaviour>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> StatusCode {
    let seen = b.seen.clone();
    let running = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(seen.clone());
    seen.max_concurrent.fetch_max(running, Ordering::SeqCst);
    seen.at.lock().unwrap().push(Instant::now());
    seen.paths.lock().unwrap().insert(uri.path().to_owned());
    let token = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *seen.last_request.lock().unwrap() = Some((method, token));
    // Counted last, so a test that sees the hit also sees what came with it.
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let scripted = b.script.lock().unwrap().pop_front();
    let mode = scripted.unwrap_or(*b.mode.lock().unwrap());
    match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => std::future::pending().await,
        Mode::Slow => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            StatusCode::OK
        }
    }
}

impl Endpoint {
    async fn start(mode: Mode) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind endpoint");
        let mut endpoint = Endpoint {
            addr: listener.local_addr().expect("endpoint addr"),
            behaviour: Behaviour {
                mode: Arc::new(Mutex::new(mode)),
                script: Arc::default(),
                seen: Arc::default(),
            },
            task: None,
        };
        endpoint.serve(listener);
        endpoint
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .fallback(answer)
            .with_state(self.behaviour.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.behaviour.mode.lock().unwrap() = mode;
    }

    fn script(&self, answers: &[Mode]) {
        self.behaviour.script.lock().unwrap().extend(answers);
    }

    fn hits(&self) -> usize {
        self.behaviour.seen.hits.load(Ordering::SeqCst)
    }

    fn seen(&self) -> &Seen {
        &self.behaviour.seen
    }

    /// Stops listening: new connections are refused.
    async fn refuse(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn accept_again(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind endpoint port");
        self.serve(listener);
    }
}

fn monitor(url: &str, interval_ms: u64, timeout_ms: u64, max_retries: u32, backoff: f64) -> Value {
    json!({ "url": url, "intervalMs": interval_ms, "timeoutMs": timeout_ms,
            "maxRetries": max_retries, "backoffMultiplier": backoff })
}

async fn put_monitor(server: &TestServer, account: &str, id: &str, body: &Value) {
    let (status, answer) = server
        .put(&format!("/v1/accounts/{account}/monitors/{id}"), body)
        .await;
    assert_eq!(status, 201, "PUT monitor {id}: {answer}");
}

/// `health_changed` data for one monitor, in seq order.
async fn health_events(server: &TestServer, account: &str, monitor: &str) -> Vec<Value> {
    server
        .events(account, 0)
        .await
        .into_iter()
        .filter(|e| e["event"] == "health_changed" && e["data"]["monitorId"] == monitor)
        .map(|e| e["data"].clone())
        .collect()
}

/// Waits until the monitor has `n` `health_changed` events and returns them.
async fn wait_health_events(server: &TestServer, account: &str, id: &str, n: usize) -> Vec<Value> {
    wait_for(
        &format!("{n} health_changed events of {id}"),
        WAIT,
        || async { health_events(server, account, id).await.len() >= n },
    )
    .await;
    health_events(server, account, id).await
}

/// (kind, previous health, current health, source) of each event.
fn transitions(events: &[Value]) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    events
        .iter()
        .map(|e| {
            (
                text(&e["kind"]),
                text(&e["previous"]["health"]),
                text(&e["current"]["health"]),
                text(&e["source"]),
            )
        })
        .collect()
}

fn t(kind: &str, from: &str, to: &str) -> (String, String, String, String) {
    (kind.into(), from.into(), to.into(), "heartbeat".into())
}

/// Waits until the endpoint has been hit `more` more times: the monitor has
/// been checked that often since the call.
async fn wait_hits(endpoint: &Endpoint, more: usize) {
    let target = endpoint.hits() + more;
    wait_for(&format!("{more} more checks"), WAIT, || async {
        endpoint.hits() >= target
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_follow_the_endpoint_and_nothing_else_is_published() {
    let server = TestServer::start().await;
    let mut endpoint = Endpoint::start(Mode::Ok).await;
    put_monitor(
        &server,
        "acme",
        "api",
        &monitor(&endpoint.url("/health"), 80, 60, 1, 1.0),
    )
    .await;

    let first = wait_health_events(&server, "acme", "api", 1).await;
    assert_eq!(
        transitions(&first),
        [t("status_change", "unknown", "healthy")]
    );
    assert_eq!(first[0]["previous"], json!({ "health": "unknown" }));
    assert_eq!(first[0]["current"]["httpStatus"], 200);
    assert!(
        first[0]["current"]["latencyMs"].is_u64() && first[0]["current"]["lastChecked"].is_string()
    );
    assert!(first[0]["current"].get("lastError").is_none());
    // Healthy and staying healthy: checks go on, events do not.
    wait_hits(&endpoint, 5).await;
    assert_eq!(
        health_events(&server, "acme", "api").await.len(),
        1,
        "no event without a change"
    );

    endpoint.set(Mode::Fail);
    let events = wait_health_events(&server, "acme", "api", 2).await;
    assert_eq!(events[1]["current"]["httpStatus"], 500);
    assert!(
        events[1]["current"]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("unexpected_status: ")
    );
    endpoint.set(Mode::Ok);
    wait_health_events(&server, "acme", "api", 3).await;

    endpoint.set(Mode::Hang);
    let events = wait_health_events(&server, "acme", "api", 4).await;
    assert!(
        events[3]["current"]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("timeout: "),
        "{}",
        events[3]
    );
    assert!(events[3]["current"].get("httpStatus").is_none());
    assert!(
        events[3]["current"]["latencyMs"].as_u64().unwrap() >= 60,
        "a timeout lasts the timeout"
    );
    endpoint.set(Mode::Ok);
    wait_health_events(&server, "acme", "api", 5).await;

    endpoint.refuse().await;
    let events = wait_health_events(&server, "acme", "api", 6).await;
    assert!(
        events[5]["current"]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("refused: "),
        "{}",
        events[5]
    );
    // Unhealthy and staying so: still no new event.
    endpoint.set(Mode::Fail);
    endpoint.accept_again().await;
    wait_hits(&endpoint, 2).await;
    endpoint.set(Mode::Ok);
    let events = wait_health_events(&server, "acme", "api", 7).await;
    wait_hits(&endpoint, 5).await;

    let events_now = health_events(&server, "acme", "api").await;
    assert_eq!(
        events_now.len(),
        7,
        "only real transitions are published: {events_now:#?}"
    );
    assert_eq!(
        transitions(&events),
        [
            t("status_change", "unknown", "healthy"),
            t("error_state", "healthy", "unhealthy"),
            t("recovery", "unhealthy", "healthy"),
            t("error_state", "healthy", "unhealthy"),
            t("recovery", "unhealthy", "healthy"),
            t("error_state", "healthy", "unhealthy"),
            t("recovery", "unhealthy", "healthy"),
        ]
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["previous"], pair[0]["current"],
            "previous is what tabs were told"
        );
    }
    // A new tab sees the monitor's current state at once.
    let (status, snapshot) = server
        .get("/v1/accounts/acme/status", Some(&server.token("acme")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["monitors"]["api"], events[6]["current"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_backoff_follow_the_settings() {
    use Mode::{Fail, Ok};
    let server = TestServer::start().await;
    let endpoint = Endpoint::start(Ok).await;
    // Three retries: a fourth consecutive failure is what makes it unhealthy.
    endpoint.script(&[
        Fail, Fail, Fail, Ok, Fail, Fail, Fail, Ok, Fail, Fail, Fail, Fail, Fail, Ok,
    ]);
    let interval = Duration::from_millis(100);
    put_monitor(
        &server,
        "acme",
        "retry",
        &monitor(&endpoint.url("/"), 100, 90, 3, 1.5),
    )
    .await;

    let events = wait_health_events(&server, "acme", "retry", 3).await;
    wait_hits(&endpoint, 2).await;
    assert_eq!(
        transitions(&health_events(&server, "acme", "retry").await),
        [
            t("status_change", "unknown", "healthy"),
            t("error_state", "healthy", "unhealthy"),
            t("recovery", "unhealthy", "healthy"),
        ],
        "three failures are retries; the fourth decides"
    );
    assert_eq!(events[1]["current"]["httpStatus"], 500);

    // Each wait is the interval times 1.5^(consecutive failures so far):
    // checks may come later than that (jitter, load), never sooner.
    let at = endpoint.seen().at.lock().unwrap().clone();
    let failures_after = [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 0];
    for (i, failures) in failures_after.iter().enumerate() {
        let gap = at[i + 1] - at[i];
        let least = interval.mul_f64(1.5f64.powi(*failures));
        assert!(
            gap >= least,
            "wait after check {} was {gap:?}, below {least:?}",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_monitors_and_their_state() {
    let server = TestServer::start().await;
    let endpoint = Endpoint::start(Mode::Ok).await;
    let spec = monitor(&endpoint.url("/x"), 100, 80, 0, 1.0);
    put_monitor(&server, "acme", "db", &spec).await;
    wait_health_events(&server, "acme", "db", 1).await;
    endpoint.set(Mode::Fail);
    wait_health_events(&server, "acme", "db", 2).await;
    let head = server.events("acme", 0).await.len();

    let dir = server.stop().await;
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    // Checked again after the restart, still failing: unhealthy was resumed,
    // so nothing is published.
    wait_hits(&endpoint, 3).await;
    let events = health_events(&server, "acme", "db").await;
    assert_eq!(
        events.len(),
        2,
        "no spurious event after a restart: {events:#?}"
    );
    let (status, view) = server
        .get("/v1/accounts/acme/monitors/db", Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"]["health"], "unhealthy");
    assert_eq!(view["url"], spec["url"]);
    assert_eq!(view["intervalMs"], 100);
    assert!(view["consecutiveFailures"].as_u64().unwrap() >= 4);

    endpoint.set(Mode::Ok);
    let events = wait_health_events(&server, "acme", "db", 3).await;
    assert_eq!(
        transitions(&events[2..]),
        [t("recovery", "unhealthy", "healthy")]
    );
    let all = server.events("acme", 0).await;
    assert_eq!(all.len(), head + 1);
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "sequence continues across the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_monitor_stops_its_checks_and_removes_it() {
    let server = TestServer::start().await;
    let doomed = Endpoint::start(Mode::Ok).await;
    let witness = Endpoint::start(Mode::Ok).await;
    put_monitor(
        &server,
        "acme",
        "doomed",
        &monitor(&doomed.url("/"), 20, 15, 0, 1.0),
    )
    .await;
    put_monitor(
        &server,
        "acme",
        "witness",
        &monitor(&witness.url("/"), 20, 15, 0, 1.0),
    )
    .await;
    wait_health_events(&server, "acme", "doomed", 1).await;
    wait_hits(&doomed, 3).await;

    let (status, _) = server.delete("/v1/accounts/acme/monitors/doomed").await;
    assert_eq!(status, 204);
    // A check already on the wire when the delete came may still land; two
    // witness checks later it has, and from then on nothing may reach it.
    wait_hits(&witness, 2).await;
    let after = doomed.hits();
    wait_hits(&witness, 15).await;
    assert_eq!(doomed.hits(), after, "checks went on after the delete");

    let (status, body) = server
        .get("/v1/accounts/acme/monitors/doomed", Some(API_KEY))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = server.delete("/v1/accounts/acme/monitors/doomed").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (_, snapshot) = server.get("/v1/accounts/acme/status", Some(API_KEY)).await;
    assert!(snapshot["monitors"].get("doomed").is_none(), "{snapshot}");
    assert!(snapshot["monitors"].get("witness").is_some());
    let events = server.events("acme", 0).await;
    let removed = events
        .iter()
        .position(|e| e["event"] == "monitor_removed" && e["data"]["monitorId"] == "doomed")
        .expect("monitor_removed published");
    assert!(
        events[removed..]
            .iter()
            .all(|e| e["data"]["monitorId"] != "doomed" || e["event"] == "monitor_removed"),
        "nothing about the monitor after its removal"
    );
    let (_, list) = server
        .get("/v1/accounts/acme/monitors", Some(API_KEY))
        .await;
    let ids: Vec<&str> = list["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["witness"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_monitors_stay_within_the_in_flight_limit() {
    const MONITORS: usize = 500;
    const LIMIT: usize = 16;
    let server = TestServer::start_with(|config| config.monitors.max_in_flight = LIMIT).await;
    let endpoint = Arc::new(Endpoint::start(Mode::Slow).await);
    let server = Arc::new(server);
    let puts = (0..MONITORS).map(|i| {
        let (server, endpoint) = (server.clone(), endpoint.clone());
        async move {
            let body = monitor(&endpoint.url(&format!("/m/{i}")), 5_000, 2_000, 0, 1.0);
            put_monitor(&server, "fleet", &format!("m{i}"), &body).await;
        }
    });
    futures::future::join_all(puts).await;

    wait_for("every monitor checked", WAIT, || async {
        endpoint.seen().paths.lock().unwrap().len() == MONITORS
    })
    .await;
    let max = endpoint.seen().max_concurrent.load(Ordering::SeqCst);
    assert!(
        max <= LIMIT,
        "{max} checks in flight at once, limit {LIMIT}"
    );
    assert!(max > 1, "checks ran one at a time");
    wait_for("a status_change per monitor", WAIT, || async {
        server
            .events("fleet", 0)
            .await
            .iter()
            .filter(|e| e["event"] == "health_changed")
            .count()
            == MONITORS
    })
    .await;
    let (_, snapshot) = server.get("/v1/accounts/fleet/status", Some(API_KEY)).await;
    assert_eq!(snapshot["monitors"].as_object().unwrap().len(), MONITORS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_api_validates_authorizes_and_overrides() {
    let server = TestServer::start_with(|config| {
        config.monitors.min_interval = Duration::from_secs(1);
    })
    .await;
    let endpoint = Endpoint::start(Mode::Ok).await;
    let path = "/v1/accounts/acme/monitors/web";
    let good = json!({ "url": endpoint.url("/ping"), "intervalMs": 60_000, "timeoutMs": 2_000,
                       "maxRetries": 2, "backoffMultiplier": 1.5, "method": "head",
                       "headers": { "x-token": "s3cret" }, "expectStatus": [200, "204-299"] });

    for (field, value) in [
        ("url", json!("ftp://example.com/")),
        ("intervalMs", json!(500)),
        ("timeoutMs", json!(60_000)),
        ("backoffMultiplier", json!(0)),
        ("expectStatus", json!(["x"])),
        ("surprise", json!(true)),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = server.put(path, &body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{field}: {answer}"
        );
    }
    let (status, answer) = server
        .put("/v1/accounts/acme/monitors/bad%20id", &good)
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (400, "bad_request"),
        "{answer}"
    );
    let token = server.token("acme");
    let (status, _) = server
        .request(Method::PUT, path, Some(&good), Some(&token))
        .await;
    assert_eq!(status, 401, "a client token cannot register monitors");
    let (status, _) = server.request(Method::PUT, path, Some(&good), None).await;
    assert_eq!(status, 401);

    let (status, created) = server.put(path, &good).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            created["method"].as_str(),
            created["state"]["health"].as_str()
        ),
        (Some("HEAD"), Some("unknown"))
    );
    assert_eq!(created["expectStatus"], json!([200, "204-299"]));
    assert_eq!(created["followRedirects"], false);
    let (status, _) = server.put(path, &good).await;
    assert_eq!(status, 200, "a second PUT replaces");
    wait_health_events(&server, "acme", "web", 1).await;
    let sent = endpoint.seen().last_request.lock().unwrap().clone();
    assert_eq!(
        sent,
        Some((Method::HEAD, Some("s3cret".into()))),
        "method and headers are sent"
    );

    // Reads: the account's token sees the monitor without header values;
    // other accounts see nothing.
    let (status, view) = server.get(&format!("{path}?token={token}"), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["headers"]["x-token"], "<redacted>");
    assert_eq!(view["state"]["health"], "healthy");
    let (_, view) = server.get(path, Some(API_KEY)).await;
    assert_eq!(view["headers"]["x-token"], "s3cret");
    let (status, _) = server.get(path, Some(&server.token("other"))).await;
    assert_eq!(status, 403);
    let (status, list) = server.get("/v1/accounts/acme/monitors", Some(&token)).await;
    assert_eq!(
        (status, list["monitors"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, list) = server
        .get("/v1/accounts/other/monitors", Some(API_KEY))
        .await;
    assert_eq!(
        (status, list["monitors"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = server
        .get("/v1/accounts/acme/monitors/nope", Some(API_KEY))
        .await;
    assert_eq!(status, 404);

    // Manual override: published like any change, once.
    let status_path = format!("{path}/status");
    let down = json!({ "health": "unhealthy", "source": "manual", "lastError": "maintenance" });
    let (status, receipt) = server.post(&status_path, &down).await;
    assert_eq!(status, 201, "{receipt}");
    assert!(receipt["seq"].is_u64());
    let (status, again) = server.post(&status_path, &down).await;
    assert_eq!((status, again["changed"].as_bool()), (200, Some(false)));
    let (status, answer) = server
        .post(
            &status_path,
            &json!({ "health": "healthy", "source": "heartbeat" }),
        )
        .await;
    assert_eq!((status, error_code(&answer)), (400, "bad_request"));
    let (status, _) = server
        .post("/v1/accounts/acme/monitors/nope/status", &down)
        .await;
    assert_eq!(status, 404);
    let events = health_events(&server, "acme", "web").await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        transitions(&events[1..]),
        [(
            "error_state".into(),
            "healthy".into(),
            "unhealthy".into(),
            "manual".into()
        )]
    );
    assert_eq!(events[1]["current"]["lastError"], "maintenance");
    let (_, snapshot) = server.get("/v1/accounts/acme/status", Some(API_KEY)).await;
    assert_eq!(snapshot["monitors"]["web"], events[1]["current"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_count_monitors_checks_and_latency() {
    use statushub::{
        config::{Limits, MonitorSettings, Retention},
        heartbeat::Heartbeat,
        hub::Hub,
        store::Stores,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (feed_tx, feed_rx) = tokio::sync::mpsc::channel(1024);
    let Stores { log, monitors, .. } =
        Stores::sqlite(dir.path(), Retention::default(), feed_tx).expect("open store");
    let hub = Hub::start(log, feed_rx, Limits::default());
    let settings = MonitorSettings {
        max_in_flight: 4,
        min_interval: Duration::from_millis(10),
        ..MonitorSettings::default()
    };
    let heartbeat = Heartbeat::start(hub, monitors, &settings)
        .await
        .expect("heartbeat");
    let up = Endpoint::start(Mode::Ok).await;
    let down = Endpoint::start(Mode::Fail).await;
    for (id, endpoint) in [("up", &up), ("down", &down)] {
        let spec =
            serde_json::from_value(monitor(&endpoint.url("/"), 20, 15, 0, 1.0)).expect("spec");
        heartbeat.put("acme", id, spec).await.expect("put");
    }
    assert_eq!(heartbeat.stats().unknown, 2, "new monitors are unknown");

    wait_for("one healthy and one unhealthy monitor", WAIT, || async {
        let stats = heartbeat.stats();
        stats.healthy == 1 && stats.unhealthy == 1 && stats.checks_failed >= 3
    })
    .await;
    let stats = heartbeat.stats();
    assert_eq!(
        (stats.monitors, stats.unknown, stats.max_in_flight),
        (2, 0, 4)
    );
    assert!(stats.checks > stats.checks_failed);
    assert_eq!(stats.check_latency.count, stats.checks);
    let last_bucket = stats.check_latency.buckets.last().expect("buckets");
    assert!(
        last_bucket.count <= stats.checks,
        "cumulative, slower checks go past the last bound"
    );
    heartbeat.delete("acme", "down").await.expect("delete");
    assert_eq!(
        (heartbeat.stats().monitors, heartbeat.stats().unhealthy),
        (1, 0)
    );
    heartbeat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_figures_reach_metrics_and_stats() {
    let server = TestServer::start().await;
    let up = Endpoint::start(Mode::Ok).await;
    let down = Endpoint::start(Mode::Fail).await;
    put_monitor(
        &server,
        "acme",
        "up",
        &monitor(&up.url("/"), 20, 15, 0, 1.0),
    )
    .await;
    put_monitor(
        &server,
        "acme",
        "down",
        &monitor(&down.url("/"), 20, 15, 0, 1.0),
    )
    .await;
    wait_for(
        "one healthy and one unhealthy monitor in /v1/stats",
        WAIT,
        || async {
            let monitors = &server.stats().await["monitors"];
            monitors["healthy"] == 1 && monitors["unhealthy"] == 1
        },
    )
    .await;
    let stats = server.stats().await;
    assert!(
        stats["monitors"]["checksFailed"].as_u64() >= Some(1),
        "{stats}"
    );
    let (status, text) = server.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("Prometheus text");
    for line in [
        "statushub_monitors{health=\"healthy\"} 1",
        "statushub_monitors{health=\"unhealthy\"} 1",
        "# TYPE statushub_monitor_check_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in /metrics");
    }
    let checks = text
        .lines()
        .find_map(|l| l.strip_prefix("statushub_monitor_checks_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(checks >= Some(2), "checks counted: {checks:?}");
}
