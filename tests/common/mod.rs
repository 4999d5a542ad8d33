//! The one harness every integration test uses: a real server (real SQLite
//! file in a temp dir) on port 0, stopped deterministically through `run`'s
//! shutdown future, and real clients for each transport: raw WebSocket
//! (tokio-tungstenite), SSE (reqwest, streamed) and a minimal Socket.IO v5 /
//! Engine.IO v4 client over WebSocket (enough for connect, events, acks).
#![allow(dead_code)] // each test binary uses a different part of the harness

use futures::{SinkExt, StreamExt};
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
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::frame::coding::CloseCode},
};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

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
        allowed_origins: vec![],
        limits: Limits::default(),
        retention: Retention::default(),
        // Monitor tests run their state machines in tens of milliseconds.
        monitors: MonitorSettings {
            min_interval: Duration::from_millis(10),
            ..MonitorSettings::default()
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

    /// Connects a Socket.IO client with `auth`; `Err` is the `connect_error` message.
    pub async fn socketio(&self, auth: Value) -> Result<SioClient, String> {
        let url = self.ws_url("/socket.io/?EIO=4&transport=websocket");
        let request = url.into_client_request().expect("socket.io request");
        let ws = self
            .ws_request(request)
            .await
            .expect("socket.io websocket upgrade");
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
        SioClient::connect(ws, auth).await
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

/// A raw WebSocket client of `/ws`.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a WebSocket ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEnd {
    Closed {
        code: u16,
        reason: String,
    },
    /// The connection ended without a close frame.
    Dropped,
}

impl WsClient {
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("send text frame");
    }

    /// The next text frame as JSON; control frames are skipped (tungstenite
    /// answers pings while reading). Panics on close or after [`WAIT`].
    pub async fn next_json(&mut self) -> Value {
        serde_json::from_str(&self.next_text().await).expect("text frames are JSON")
    }

    /// The next `{"type":"event"}` frame; panics on any other frame.
    pub async fn next_event(&mut self) -> Value {
        let frame = self.next_json().await;
        assert_eq!(frame["type"], "event", "expected an event frame: {frame}");
        frame
    }

    /// Reads until the connection ends; returns how, and the text frames seen before.
    pub async fn end(&mut self) -> (WsEnd, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("the connection ends within the wait");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    seen.push(serde_json::from_str(&text).expect("text frames are JSON"));
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    let code = u16::from(frame.code);
                    return (
                        WsEnd::Closed {
                            code,
                            reason: frame.reason.to_string(),
                        },
                        seen,
                    );
                }
                Some(Ok(Message::Close(None))) => {
                    let code = u16::from(CloseCode::Status);
                    return (
                        WsEnd::Closed {
                            code,
                            reason: String::new(),
                        },
                        seen,
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (WsEnd::Dropped, seen),
            }
        }
    }

    /// Reads until closed and returns the close code; panics if it was dropped.
    pub async fn close_code(&mut self) -> (u16, String, Vec<Value>) {
        match self.end().await {
            (WsEnd::Closed { code, reason }, seen) => (code, reason, seen),
            (WsEnd::Dropped, seen) => {
                panic!("connection dropped without a close frame after {seen:?}")
            }
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("SSE data is JSON")
    }
}

/// One SSE block (the text between blank lines): an event, a comment, or nothing.
pub fn parse_sse_block(block: &str) -> Option<SseItem> {
    let mut event = SseEvent {
        event: "message".into(),
        ..SseEvent::default()
    };
    let mut has_fields = false;
    let mut comment = None;
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(text) = line.strip_prefix(':') {
            comment = Some(text.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        has_fields = true;
        match field {
            "id" => event.id = Some(value),
            "event" => event.event = value,
            "data" if event.data.is_empty() => event.data = value,
            "data" => event.data = format!("{}\n{value}", event.data),
            _ => {}
        }
    }
    if has_fields {
        Some(SseItem::Event(event))
    } else {
        comment.map(SseItem::Comment)
    }
}

/// Every event in a complete SSE body.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter_map(parse_sse_block)
        .filter_map(|item| match item {
            SseItem::Event(event) => Some(event),
            SseItem::Comment(_) => None,
        })
        .collect()
}

/// A TCP connection to `addr` with a tiny receive buffer: a client that
/// stops reading fills it (and the server's buffers) after a few kilobytes.
pub async fn slow_tcp(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(addr).await.expect("connect")
}

#[derive(Debug)]
pub enum SseItem {
    Event(SseEvent),
    Comment(String),
}

/// A streamed SSE response, parsed into events as they arrive.
pub struct SseClient {
    pub response: reqwest::Response,
    buffer: String,
    /// Comment lines seen so far (keep-alives).
    pub comments: usize,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        SseClient {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next event, or `None` when the server ended the stream; comments
    /// (keep-alives) are counted and skipped. Panics after [`WAIT`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            match self.next_item().await? {
                SseItem::Event(event) => return Some(event),
                SseItem::Comment(_) => continue,
            }
        }
    }

    /// The next event or comment block, or `None` at the end of the stream.
    pub async fn next_item(&mut self) -> Option<SseItem> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                self.comments += block.lines().filter(|l| l.starts_with(':')).count();
                if let Some(item) = parse_sse_block(&block) {
                    return Some(item);
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("SSE data within the wait")
                .ok()
                .flatten()?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    }

    /// The next event, which must exist.
    pub async fn next_event(&mut self) -> SseEvent {
        self.next().await.expect("the SSE stream ended early")
    }
}

/// A minimal Socket.IO client (Engine.IO v4 over WebSocket, default namespace).
pub struct SioClient {
    ws: WsClient,
    next_ack: u64,
}

/// A Socket.IO event as the client sees it: `(name, data, meta)`.
pub type SioEvent = (String, Value, Value);

impl SioClient {
    async fn connect(mut ws: WsClient, auth: Value) -> Result<Self, String> {
        let open = ws.next_text().await;
        assert!(
            open.starts_with('0'),
            "expected the Engine.IO open packet, got {open}"
        );
        ws.send_text(&format!("40{auth}")).await;
        let mut client = SioClient { ws, next_ack: 1 };
        loop {
            let packet = client.packet().await.ok_or("closed before connecting")?;
            if let Some(body) = packet.strip_prefix('0') {
                assert!(
                    body.contains("sid"),
                    "connect packet carries a sid: {packet}"
                );
                return Ok(client);
            }
            if let Some(body) = packet.strip_prefix('4') {
                let error: Value = serde_json::from_str(body).expect("connect_error is JSON");
                return Err(error["message"].as_str().unwrap_or_default().to_owned());
            }
        }
    }

    /// The next Socket.IO packet (without the Engine.IO `4`), answering pings;
    /// `None` when the connection or the namespace closed.
    async fn packet(&mut self) -> Option<String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.stream.next())
                .await
                .expect("a Socket.IO packet within the wait");
            let text = match msg {
                Some(Ok(Message::Text(text))) => text.to_string(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            };
            match text.as_bytes().first() {
                Some(b'2') => self.ws.send_text("3").await,
                Some(b'4') if text.starts_with("41") => return None,
                Some(b'4') => return Some(text[1..].to_owned()),
                Some(b'1') => return None,
                _ => continue,
            }
        }
    }

    /// The next event (`42[name, data, meta]`); `None` once disconnected.
    pub async fn next_event(&mut self) -> Option<SioEvent> {
        loop {
            let packet = self.packet().await?;
            if let Some(body) = packet.strip_prefix('2') {
                let args: Vec<Value> = serde_json::from_str(body).expect("event args are JSON");
                let mut args = args.into_iter();
                let name = args
                    .next()
                    .and_then(|n| n.as_str().map(str::to_owned))
                    .unwrap_or_default();
                return Some((
                    name,
                    args.next().unwrap_or(Value::Null),
                    args.next().unwrap_or(Value::Null),
                ));
            }
        }
    }

    /// Emits `event` with `data` and waits for its ack's first argument; events
    /// arriving meanwhile are returned too, in order.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> (Value, Vec<SioEvent>) {
        let id = self.next_ack;
        self.next_ack += 1;
        self.ws
            .send_text(&format!("42{id}{}", json!([event, data])))
            .await;
        let mut events = Vec::new();
        loop {
            let packet = self
                .packet()
                .await
                .expect("connected while waiting for an ack");
            if let Some(body) = packet.strip_prefix(&format!("3{id}")) {
                let args: Vec<Value> = serde_json::from_str(body).expect("ack args are JSON");
                return (args.into_iter().next().unwrap_or(Value::Null), events);
            }
            if let Some(body) = packet.strip_prefix('2') {
                let args: Vec<Value> = serde_json::from_str(body).expect("event args are JSON");
                let name = args[0].as_str().unwrap_or_default().to_owned();
                events.push((
                    name,
                    args.get(1).cloned().unwrap_or(Value::Null),
                    args.get(2).cloned().unwrap_or(Value::Null),
                ));
            }
        }
    }
}

impl WsClient {
    async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }
}
