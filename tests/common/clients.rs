//! The test clients of the three transports, as real clients speak them:
//! raw WebSocket (tokio-tungstenite), SSE (reqwest, streamed) and a minimal
//! Socket.IO v5 / Engine.IO v4 client over WebSocket (enough for connect,
//! events, acks). Each also implements [`Deliveries`], the one interface
//! tests use to read events as `(seq, id, event)` whatever the transport.

use super::WAIT;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

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
    pub(super) async fn connect(mut ws: WsClient, auth: &str) -> Result<Self, String> {
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
    /// The next text frame; control frames are skipped. Panics on anything
    /// else or after [`WAIT`].
    pub async fn next_text(&mut self) -> String {
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

/// One event as any transport delivered it: `(seq, id, event name)`.
pub type Delivery = (u64, String, String);

/// The one way tests read events, whatever the transport: the next event
/// (snapshots and disconnect notices skipped), or `None` once the server
/// ended the connection. Each read is bounded by [`WAIT`].
#[allow(async_fn_in_trait)] // used in tests only, never across threads by name
pub trait Deliveries {
    async fn next_delivery(&mut self) -> Option<Delivery>;

    /// The next `n` deliveries; panics if the connection ends first.
    async fn deliveries(&mut self, n: usize) -> Vec<Delivery> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let next = self.next_delivery().await;
            got.push(next.unwrap_or_else(|| panic!("ended after {got:?}")));
        }
        got
    }
}

/// `(seq, id, event)` of an envelope or a Socket.IO `meta` (plus the name).
fn delivery(name: &str, fields: &Value) -> Delivery {
    (
        fields["seq"].as_u64().expect("seq is a number"),
        fields["id"].as_str().expect("id is a string").to_owned(),
        name.to_owned(),
    )
}

/// Names that are not events of the account.
fn is_control(name: &str) -> bool {
    name == "snapshot" || name == "statushub:disconnect"
}

impl Deliveries for WsClient {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within the wait");
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            };
            let frame: Value = serde_json::from_str(&text).expect("text frames are JSON");
            if frame["type"] == "event" {
                let name = frame["event"].as_str().unwrap_or_default().to_owned();
                return Some(delivery(&name, &frame));
            }
        }
    }
}

impl Deliveries for SseClient {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            let event = self.next().await?;
            if !is_control(&event.event) {
                return Some(delivery(&event.event, &event.json()));
            }
        }
    }
}

impl Deliveries for SioClient {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            let (name, _, meta) = self.next_event().await?;
            if !is_control(&name) {
                return Some(delivery(&name, &meta));
            }
        }
    }
}
