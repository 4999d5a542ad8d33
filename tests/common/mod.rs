//! The one harness every integration test uses: a real server (real SQLite
//! file in a temp dir) on port 0, stopped deterministically through `run`'s
//! shutdown future; [`Nodes`], several such servers in one test; and real
//! clients for each transport ([`clients`]), read through one interface,
//! [`Deliveries`]. Every wait in a test is bounded by the one [`WAIT`].
#![allow(dead_code)] // each test binary uses a different part of the harness

mod clients;

pub use clients::*;

use serde_json::{Value, json};
use statushub::{
    auth::Jwt,
    config::{Config, Limits, MonitorSettings, Retention},
    server::ServerError,
};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_tungstenite::{
    MaybeTlsStream,
    tungstenite::{self, client::IntoClientRequest},
};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub const API_KEY: &str = "test-api-key";
pub const SECRET: &str = "test-jwt-secret";

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub jwt: Jwt,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

pub fn test_config(data_dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("static address"),
        data_dir: data_dir.to_owned(),
        jwt_secret: SECRET.into(),
        api_keys: vec![API_KEY.into(), "second-key".into()],
        redis_url: None,
        redis_prefix: None,
        allowed_origins: vec![],
        limits: Limits::default(),
        retention: Retention::default(),
        // Monitor tests run their state machines in tens of milliseconds.
        monitors: MonitorSettings {
            min_interval: Duration::from_millis(10),
            ..MonitorSettings::default()
        },
        // Webhook tests poll the outbox often (time itself is injected).
        webhooks: statushub::webhooks::Settings {
            poll: Duration::from_millis(20),
            ..statushub::webhooks::Settings::default()
        },
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose config `tweak` may adjust.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(data_dir.path());
        tweak(&mut config);
        Self::start_in(data_dir, config).await
    }

    /// Starts a server on an existing data dir (to test restarts).
    pub async fn start_in(data_dir: tempfile::TempDir, config: Config) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(statushub::run(listener, config, async {
            let _ = rx.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            addr,
            jwt: Jwt::new(SECRET),
            http: reqwest::Client::new(),
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn token(&self, account: &str) -> String {
        self.jwt
            .mint(account, "user-1", None, Duration::from_secs(3600))
    }

    pub fn admin_token(&self) -> String {
        self.jwt
            .mint("ops", "admin-1", Some("admin"), Duration::from_secs(3600))
    }

    /// `GET /v1/stats` as JSON.
    pub async fn stats(&self) -> Value {
        let (status, body) = self.get("/v1/stats", None).await;
        assert_eq!(status, 200, "stats failed: {body}");
        body
    }

    /// Open connections of one transport (`websocket`, `sse`, `socketio`) per `/v1/stats`.
    pub async fn open_connections(&self, transport: &str) -> u64 {
        self.stats().await["connections"][transport]["open"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Publishes a custom event; returns its receipt.
    pub async fn publish(&self, account: &str, event: &str, data: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{account}/events"),
                &json!({ "event": event, "data": data }),
            )
            .await;
        assert_eq!(status, 201, "publish failed: {body}");
        body
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{path_and_query}", self.addr)
    }

    /// Opens `/ws{query}`; panics if the upgrade is refused.
    pub async fn ws(&self, query: &str) -> WsClient {
        self.ws_request(
            self.ws_url(&format!("/ws{query}"))
                .into_client_request()
                .expect("ws request"),
        )
        .await
        .expect("websocket upgrade")
    }

    /// Opens `/ws` authenticated as `account` through `?token=`, and reads its snapshot.
    pub async fn ws_for(&self, account: &str) -> WsClient {
        let mut ws = self.ws(&format!("?token={}", self.token(account))).await;
        let first = ws.next_json().await;
        assert_eq!(
            first["type"], "snapshot",
            "first frame is the snapshot: {first}"
        );
        ws
    }

    /// Any upgrade request (custom headers, other paths); the error carries a refusal's status.
    pub async fn ws_request(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> Result<WsClient, tungstenite::Error> {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("websocket connect within the wait")?;
        Ok(WsClient { stream })
    }

    /// `GET {path}` as an SSE stream with extra headers; not yet checked.
    pub async fn sse_request(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}{path}", self.url))
            .header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        tokio::time::timeout(WAIT, request.send())
            .await
            .expect("SSE response within the wait")
            .expect("SSE request")
    }

    /// Opens an SSE stream that must answer 200.
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let response = self.sse_request(path, headers).await;
        assert_eq!(response.status(), 200, "SSE stream refused");
        SseClient::new(response)
    }

    /// Connects a Socket.IO client with `auth`; `Err` is the `connect_error`
    /// message, or `code: message` of a handshake refused over HTTP.
    pub async fn socketio(&self, auth: Value) -> Result<SioClient, String> {
        self.socketio_raw(&auth.to_string()).await
    }

    /// Connects a Socket.IO client with `auth` as JSON text (for what a
    /// `Value` cannot hold, such as `1e400`).
    pub async fn socketio_raw(&self, auth: &str) -> Result<SioClient, String> {
        let url = self.ws_url("/socket.io/?EIO=4&transport=websocket");
        let request = url.into_client_request().expect("socket.io request");
        let ws = match self.ws_request(request).await {
            Ok(ws) => ws,
            Err(tungstenite::Error::Http(response)) => {
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("a refused handshake has a JSON error body");
                return Err(format!(
                    "{}: {}",
                    error_code(&body),
                    body["error"]["message"].as_str().unwrap_or_default()
                ));
            }
            Err(e) => panic!("socket.io websocket upgrade: {e}"),
        };
        SioClient::connect(ws, auth).await
    }

    /// A WebSocket to `path_and_query` over a TCP stream the test made (e.g. [`slow_tcp`]).
    pub async fn ws_over(&self, stream: TcpStream, path_and_query: &str) -> WsClient {
        let request = self
            .ws_url(path_and_query)
            .into_client_request()
            .expect("ws request");
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket upgrade");
        WsClient { stream }
    }

    /// A Socket.IO client over a TCP stream the test made.
    pub async fn socketio_over(&self, stream: TcpStream, auth: Value) -> Result<SioClient, String> {
        let ws = self
            .ws_over(stream, "/socket.io/?EIO=4&transport=websocket")
            .await;
        SioClient::connect(ws, &auth.to_string()).await
    }

    /// POSTs JSON to `path` with the API key.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .expect("request");
        answer(response).await
    }

    /// Sends `method` to `path` with an optional JSON body and bearer credential.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        credential: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        answer(request.send().await.expect("request")).await
    }

    /// PUTs JSON to `path` with the API key.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body), Some(API_KEY))
            .await
    }

    /// DELETEs `path` with the API key.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None, Some(API_KEY))
            .await
    }

    /// GETs `path` with the given bearer credential (or none).
    pub async fn get(&self, path: &str, credential: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        answer(request.send().await.expect("request")).await
    }

    pub async fn phone_test(&self, account: &str, phone: &str, active: bool) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{account}/phone-tests"),
                &serde_json::json!({ "phoneNumberId": phone, "isActive": active }),
            )
            .await;
        assert_eq!(status, 201, "publish failed: {body}");
        body
    }

    /// Retained events of an account after `since`, read with the API key.
    pub async fn events(&self, account: &str, since: u64) -> Vec<Value> {
        let (status, body) = self
            .get(
                &format!("/v1/accounts/{account}/events?since={since}&limit=10000"),
                Some(API_KEY),
            )
            .await;
        assert_eq!(status, 200, "events read failed: {body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Simulates the node's death: its task is aborted, so nothing is shut
    /// down or given back (monitor leases run out on their own). Keep-alive
    /// connections to it may still answer; tests do not use it afterwards.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Graceful stop; returns the data dir so a test can restart on it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stops within 15 s")
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, dir)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// `STATUSHUB_TEST_LOGS=1` shows the server's logs (filtered by `RUST_LOG`) in test output.
fn init_logs() {
    if std::env::var_os("STATUSHUB_TEST_LOGS").is_some() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Waits for `condition` to hold, polling, or panics naming `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts the contract's error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"].as_str();
    assert!(
        code.is_some() && body["error"]["message"].is_string(),
        "not the contract's error shape: {body}"
    );
    code.unwrap_or_default()
}

/// Several hub nodes in one test, each a [`TestServer`] on its own port and
/// data dir. `config` adjusts each node's config by its index (cluster mode
/// will give them one Redis there).
pub struct Nodes {
    pub nodes: Vec<TestServer>,
}

impl Nodes {
    pub async fn start(count: usize, config: impl Fn(usize, &mut Config)) -> Self {
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            nodes.push(TestServer::start_with(|c| config(index, c)).await);
        }
        Nodes { nodes }
    }

    /// Stops every node in order.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

impl std::ops::Index<usize> for Nodes {
    type Output = TestServer;

    fn index(&self, index: usize) -> &TestServer {
        &self.nodes[index]
    }
}
