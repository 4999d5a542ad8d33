//! Raw WebSocket at `/ws`, for clients that want the hub without a
//! Socket.IO library: JSON text frames exactly as the contract shows.
//!
//! Each connection has one bounded outgoing queue drained by its own writer
//! task; the hub's [`Sink::try_send`] is a non-blocking `try_send` into it,
//! so a full queue is the slow-consumer signal and the hub cuts the
//! connection off instead of waiting. Events are sent as the frame text the
//! hub's event encoded once for every subscriber ([`wire::ws_frame`]).
//!
//! The connection's own task reads client frames, pings the peer and watches
//! for shutdown; whoever decides the connection must end (the hub, the
//! reader, shutdown) records an [`Ending`] once, and the writer says goodbye
//! with the matching close code. The codes are defined (and tabled) in
//! [`crate::disconnect`] and listed for users in docs/OPERATIONS.md; more
//! than [`MAX_BAD_FRAMES`] malformed frames close with `bad_request`.
//!
//! Subscribing (the own account on auth, others with `subscribe` frames)
//! follows the one subscribe path, [`crate::subscribe`].

use super::{
    Context, PeerIp, next_connection_id, refusal_error,
    wire::{self, Raw, WsClientFrame},
};
use crate::{
    admission::Permit,
    api::ApiError,
    auth::{self, AuthError, Claims},
    disconnect::{self, Disconnect, DisconnectReason},
    hub::{Outbound, Sink, SinkError, Transport},
    subscribe::{self, Start, SubscribeError, SubscribeRequest, Subscriptions},
};
use axum::{
    Router,
    extract::{
        Query, State,
        rejection::QueryRejection,
        ws::{
            CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, header},
    response::Response,
    routing::get,
};
use bytes::Bytes;
use flume::TrySendError;
use futures::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::Deserialize;
use std::{
    fmt::Display,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::watch;

/// Malformed frames a connection may send (each answered with an `error`
/// frame) before it is closed: enough for a client bug to be visible, not
/// enough to keep the server parsing garbage.
pub const MAX_BAD_FRAMES: u32 = 10;
/// How long the goodbye (queued frames, close frame, the peer's close reply)
/// may take before the connection is dropped regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Queued frames written per flush.
const WRITE_BATCH: usize = 64;
/// Per-connection buffers. tungstenite allocates its read buffer up front
/// (128 KiB by default, most of an idle connection's memory) and zero-fills
/// it before each read; client frames are small, and a larger one grows the
/// buffer as needed. 1 KiB instead of 4 KiB took an idle connection from
/// 12.1 KB to 9.5 KB of server RSS (docs/PERFORMANCE.md).
const READ_BUFFER: usize = 1024;
/// Frames are buffered up to this before being written; a flush writes all.
const WRITE_BUFFER: usize = 16 * 1024;

/// A slow peer's queue is the problem: it resumes with `since` instead.
fn sends_queued_frames(close: Disconnect) -> bool {
    close != Disconnect::SLOW
}

/// Why the connection ends; the first one recorded wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Server(Disconnect),
    /// The peer closed or vanished; nothing is left to tell it.
    Peer(&'static str),
}

impl Ending {
    fn word(self) -> &'static str {
        match self {
            Ending::Server(close) => close.word,
            Ending::Peer(word) => word,
        }
    }

    fn from_hub(reason: DisconnectReason) -> Ending {
        reason
            .server_close()
            .map_or(Ending::Peer(disconnect::GONE), Ending::Server)
    }
}

pub fn router(ctx: Context) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(ctx)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WsQuery {
    token: Option<String>,
    since: Option<String>,
    epoch: Option<String>,
    filter: Option<String>,
}

/// A token given with the upgrade request, checked before upgrading.
enum Credential {
    Absent,
    Verified(Claims),
    Refused(AuthError),
}

/// Admission and the token check happen before the upgrade; a bad token
/// still upgrades so that browsers (which cannot read a refused upgrade's
/// status) learn why from the `error` frame and close code.
async fn upgrade(
    State(ctx): State<Context>,
    PeerIp(ip): PeerIp,
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|r| ApiError::new(r.status(), "upgrade_required", r.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let permit = ctx
        .admission
        .admit(ip, Transport::WebSocket)
        .map_err(refusal_error)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::bearer)
        .or(query.token.as_deref());
    let credential = match token.map(|t| ctx.jwt.verify(t)) {
        None => Credential::Absent,
        Some(Ok(claims)) => Credential::Verified(claims),
        Some(Err(e)) => Credential::Refused(e),
    };
    let (since, epoch, filter) = (query.since.as_deref(), query.epoch.as_deref(), query.filter);
    let start = subscribe::parse_start_text(since, epoch, filter.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let max = ctx.limits.max_message_bytes;
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(ctx, permit, socket, credential, start)))
}

/// The connection's outgoing side: the bounded queue and the ending signal.
struct Outbox {
    /// Bounded at `--queue-size`. flume's queue grows as frames arrive
    /// instead of allocating a block up front as tokio's does (1.5 KB per
    /// idle connection).
    queue: flume::Sender<Message>,
    ending: watch::Sender<Option<Ending>>,
}

impl Outbox {
    fn end(&self, ending: Ending) {
        self.ending.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(ending);
            }
            first
        });
    }

    /// Best effort: a peer whose queue is full will hear from the hub instead.
    fn text(&self, text: Utf8Bytes) {
        let _ = self.queue.try_send(Message::Text(text));
    }

    fn error(&self, code: &str, message: impl Display) {
        if let Ok(text) = wire::ws_error(code, &message.to_string()) {
            self.text(text);
        }
    }
}

impl Sink for Outbox {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        let frame = match msg {
            Outbound::Event(published) => wire::ws_frame(published),
            Outbound::Snapshot(snapshot) => {
                wire::ws_snapshot(snapshot).map_err(|_| SinkError::Closed)?
            }
        };
        self.queue
            .try_send(Message::Text(frame))
            .map_err(|e| match e {
                TrySendError::Full(_) => SinkError::Full,
                TrySendError::Disconnected(_) => SinkError::Closed,
            })
    }

    fn close(&self, reason: DisconnectReason) {
        self.end(Ending::from_hub(reason));
    }

    fn transport(&self) -> Transport {
        Transport::WebSocket
    }
}

async fn serve(
    ctx: Context,
    permit: Permit,
    socket: WebSocket,
    credential: Credential,
    start: Start,
) {
    let id = next_connection_id();
    let opened = Instant::now();
    let (sink, stream) = socket.split();
    let (queue, queue_rx) = flume::bounded(ctx.limits.queue_size);
    let (ending, ending_rx) = watch::channel(None);
    let outbox = Arc::new(Outbox { queue, ending });
    let writer = tokio::spawn(write(sink, queue_rx, ending_rx.clone()));
    tracing::info!(transport = "websocket", connection = id, ip = %permit.ip(), "connection opened");

    let mut conn = Connection {
        ctx,
        id,
        outbox,
        claims: None,
        subs: Subscriptions::of(format!("ws-{id}"), permit.opened_at().to_owned()),
        bad_frames: 0,
    };
    match credential {
        Credential::Absent => {}
        Credential::Verified(claims) => conn.authenticated(claims, start),
        Credential::Refused(e) => conn.refuse(e),
    }
    let readable = conn.run(stream, ending_rx.clone()).await;

    // Nothing more is offered to this connection from here on.
    conn.subs.release(&conn.ctx.hub);
    // The writer ends within CLOSE_GRACE on every path once an ending is set.
    let _ = writer.await;
    if let Some(stream) = readable {
        // Read the peer's close reply, so the socket closes cleanly instead
        // of being reset with unread data.
        let _ = tokio::time::timeout(CLOSE_GRACE, drain(stream)).await;
    }
    let ending = (*ending_rx.borrow()).unwrap_or(Ending::Peer(disconnect::CLIENT_CLOSED));
    permit.set_close_reason(ending.word());
    let code = match ending {
        Ending::Server(close) => Some(close.ws_code),
        Ending::Peer(_) => None,
    };
    tracing::info!(
        transport = "websocket",
        connection = id,
        account = conn.claims.as_ref().map(|c| c.account_id.as_str()),
        reason = ending.word(),
        code,
        duration_ms = opened.elapsed().as_millis() as u64,
        "connection closed"
    );
}

async fn drain(mut stream: SplitStream<WebSocket>) {
    while let Some(Ok(msg)) = stream.next().await {
        if matches!(msg, Message::Close(_)) {
            return;
        }
    }
}

struct Connection {
    ctx: Context,
    id: u64,
    outbox: Arc<Outbox>,
    claims: Option<Claims>,
    subs: Subscriptions,
    bad_frames: u32,
}

impl Connection {
    /// Reads client frames, pings the peer and watches for shutdown until an
    /// ending is recorded. Returns the stream when it is still safe to read.
    async fn run(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        mut ending: watch::Receiver<Option<Ending>>,
    ) -> Option<SplitStream<WebSocket>> {
        let limits = self.ctx.limits.clone();
        let auth_deadline = tokio::time::sleep(limits.auth_timeout);
        let pong_deadline = tokio::time::sleep(limits.ping_timeout);
        let shutdown = self.ctx.shutdown.clone().cancelled_owned();
        tokio::pin!(auth_deadline, pong_deadline, shutdown);
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + limits.ping_interval,
            limits.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting_pong = false;
        let mut readable = true;
        loop {
            tokio::select! {
                biased;
                _ = ending.wait_for(Option::is_some) => break,
                () = &mut shutdown => self.outbox.end(Ending::Server(Disconnect::SHUTDOWN)),
                () = &mut auth_deadline, if self.claims.is_none() => {
                    self.outbox.error(Disconnect::UNAUTHORIZED.word, format!(
                        "no auth frame within {:?}", limits.auth_timeout));
                    self.outbox.end(Ending::Server(Disconnect::AUTH_TIMEOUT));
                }
                () = &mut pong_deadline, if awaiting_pong => {
                    self.outbox.end(Ending::Server(Disconnect::PING_TIMEOUT));
                }
                _ = ping.tick(), if !awaiting_pong => {
                    if self.outbox.queue.try_send(Message::Ping(Bytes::new())).is_ok() {
                        awaiting_pong = true;
                        pong_deadline.as_mut().reset(tokio::time::Instant::now() + limits.ping_timeout);
                    }
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(&text),
                    Some(Ok(Message::Binary(_))) => {
                        self.bad_frame("bad_request", "frames must be JSON text, not binary");
                    }
                    Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None => self.outbox.end(Ending::Peer(disconnect::CLIENT_CLOSED)),
                    Some(Err(e)) => {
                        // tungstenite ends the stream after any read error (and
                        // the rest of an oversized frame is unread: reading on
                        // would buffer it), so the reader stops here.
                        readable = false;
                        tracing::debug!(connection = self.id, error = %e, "websocket read failed");
                        match read_failure(&e) {
                            ReadFailure::TooLarge => {
                                self.outbox.error("too_large", format!(
                                    "frames are limited to {} bytes", limits.max_message_bytes));
                                self.outbox.end(Ending::Server(Disconnect::TOO_LARGE));
                            }
                            ReadFailure::Protocol(close) => self.outbox.end(Ending::Server(close)),
                            ReadFailure::Transport => {
                                self.outbox.end(Ending::Peer(disconnect::TRANSPORT_ERROR));
                            }
                        }
                    }
                },
            }
        }
        readable.then_some(stream)
    }

    fn on_text(&mut self, text: &str) {
        let frame = match wire::ws_client_frame(text) {
            Ok(frame) => frame,
            Err(message) => return self.bad_frame("bad_request", message),
        };
        match frame {
            WsClientFrame::Ping => self.outbox.text(Utf8Bytes::from_static(wire::WS_PONG)),
            WsClientFrame::Auth { .. } if self.claims.is_some() => {
                self.bad_frame("bad_request", "already authenticated");
            }
            WsClientFrame::Auth {
                token,
                since,
                epoch,
                filter,
            } => {
                let start = match subscribe::parse_start(since, epoch, filter) {
                    Ok(start) => start,
                    Err(e) => return self.bad_frame(e.code(), e),
                };
                match self.ctx.jwt.verify(&token) {
                    Ok(claims) => self.authenticated(claims, start),
                    Err(e) => self.refuse(e),
                }
            }
            WsClientFrame::Subscribe {
                account_id,
                since,
                epoch,
                filter,
            } => self.subscribe(account_id, since, epoch, filter),
        }
    }

    fn authenticated(&mut self, claims: Claims, (resume, filter): Start) {
        tracing::info!(transport = "websocket", connection = self.id, account = %claims.account_id,
            user = %claims.sub, since = resume.since, epoch = resume.epoch, "connection authenticated");
        self.subs
            .join_own(&self.ctx.hub, &claims, resume, filter, self.outbox.clone());
        self.claims = Some(claims);
    }

    fn refuse(&mut self, e: AuthError) {
        self.outbox.error(Disconnect::UNAUTHORIZED.word, &e);
        self.outbox.end(Ending::Server(Disconnect::UNAUTHORIZED));
    }

    /// An admin watches another account; a non-admin gets `forbidden` and
    /// nothing else. A frame that could never succeed (no auth yet, a bad
    /// account id or `since`) counts as a bad frame.
    fn subscribe(&mut self, account: String, since: Raw<'_>, epoch: Raw<'_>, filter: Raw<'_>) {
        let parsed = match self.claims {
            None => Err(SubscribeError::NotAuthenticated),
            Some(_) => SubscribeRequest::parse(account, since, epoch)
                .and_then(|req| req.with_filter(filter)),
        };
        let added = parsed.and_then(|req| {
            let requested = req.account_id.clone();
            let max = self.ctx.limits.max_subscriptions;
            let claims = self.claims.as_ref();
            self.subs
                .add(&self.ctx.hub, claims, req, max, self.outbox.clone())
                .inspect_err(|e| {
                    if let (SubscribeError::Forbidden(_), Some(claims)) = (e, claims) {
                        tracing::info!(transport = "websocket", connection = self.id,
                            account = %claims.account_id, requested = %requested,
                            "subscription refused: forbidden");
                    }
                })
        });
        match added {
            Ok(()) => {}
            Err(
                e @ (SubscribeError::NotAuthenticated
                | SubscribeError::BadAccount(_)
                | SubscribeError::BadSince),
            ) => self.bad_frame(e.code(), e),
            Err(e) => self.outbox.error(e.code(), e),
        }
    }

    fn bad_frame(&mut self, code: &str, message: impl Display) {
        self.bad_frames += 1;
        self.outbox.error(code, message);
        if self.bad_frames > MAX_BAD_FRAMES {
            self.outbox.end(Ending::Server(Disconnect::BAD_REQUEST));
        }
    }
}

/// What a failed read means for the close the peer gets.
enum ReadFailure {
    /// A frame over the size limit: close 1009.
    TooLarge,
    /// A frame breaking RFC 6455: close 1002, or 1007 for text that is not
    /// UTF-8. The peer is still there to be told.
    Protocol(Disconnect),
    /// The connection itself broke: nobody left to tell.
    Transport,
}

fn read_failure(e: &axum::Error) -> ReadFailure {
    let inner = std::error::Error::source(e).and_then(|i| i.downcast_ref::<tungstenite::Error>());
    match inner {
        Some(tungstenite::Error::Capacity(_)) => ReadFailure::TooLarge,
        Some(tungstenite::Error::Utf8(_)) => ReadFailure::Protocol(Disconnect::INVALID_PAYLOAD),
        Some(tungstenite::Error::Protocol(p)) if !peer_is_gone(p) => {
            ReadFailure::Protocol(Disconnect::PROTOCOL_ERROR)
        }
        _ => ReadFailure::Transport,
    }
}

/// Protocol errors that mean the peer went away rather than misbehaved.
fn peer_is_gone(e: &tungstenite::error::ProtocolError) -> bool {
    matches!(
        e,
        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            | tungstenite::error::ProtocolError::SendAfterClosing
            | tungstenite::error::ProtocolError::ReceivedAfterClosing
    )
}

/// Writes queued frames until an ending is recorded, then says goodbye.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    queue: flume::Receiver<Message>,
    mut ending: watch::Receiver<Option<Ending>>,
) {
    loop {
        let first = tokio::select! {
            biased;
            _ = ending.wait_for(Option::is_some) => break,
            msg = queue.recv_async() => match msg {
                Ok(msg) => msg,
                Err(_) => break,
            },
        };
        tokio::select! {
            biased;
            written = write_batch(&mut sink, first, &queue) => if written.is_err() {
                return;
            },
            // A peer that stops reading blocks the write; being told to go must not wait for it.
            _ = ending.wait_for(Option::is_some) => break,
        }
    }
    let ending = *ending.borrow();
    let goodbye = async {
        match ending {
            Some(Ending::Server(close)) => {
                if sends_queued_frames(close) {
                    while let Ok(msg) = queue.try_recv() {
                        sink.feed(msg).await?;
                    }
                }
                let frame = CloseFrame {
                    code: close.ws_code,
                    reason: Utf8Bytes::from_static(close.ws_text),
                };
                sink.send(Message::Close(Some(frame))).await
            }
            // Flushes tungstenite's reply to the peer's close frame.
            Some(Ending::Peer(_)) | None => sink.close().await,
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
}

async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Message,
    queue: &flume::Receiver<Message>,
) -> Result<(), axum::Error> {
    sink.feed(first).await?;
    for _ in 1..WRITE_BATCH {
        match queue.try_recv() {
            Ok(msg) => sink.feed(msg).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
