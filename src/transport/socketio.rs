//! Socket.IO (Engine.IO v4, WebSocket and long-polling) on socketioxide.
//!
//! socketioxide's per-socket buffer (`max_buffer_size`) is the bounded
//! outgoing queue: `emit` is a non-blocking `try_send` into it, and a full
//! buffer is our slow-consumer signal. socketioxide cannot close a socket whose
//! buffer is full (its `disconnect` needs a free slot), so a slow socket gets
//! no further events at once and its disconnect notice is retried until a
//! slot frees; a peer that reads nothing at all is reaped by the Engine.IO
//! heartbeat. Either way its memory stays bounded by the buffer.
//!
//! Admission (the shared connection limits) is asked at the Engine.IO
//! handshake, before a session exists ([`SessionLimit`]): an Engine.IO
//! session costs memory whether or not a Socket.IO client ever joins, so
//! each one is a connection, refused past the limits with the contract's
//! HTTP 429/503. The permit lives as long as the session (a polling session
//! upgraded to WebSocket is the same session: one connection), and a session
//! that does not join the namespace within `--connect-timeout` is closed by
//! socketioxide, freeing its place. The `Origin` check happens before
//! Engine.IO sees the request, in [`super::origin::guard`]. Subscribing (the
//! own account on connect, others with a `subscribe` event and its ack)
//! follows the one subscribe path, [`crate::subscribe`]. The HTTP layer in
//! front of socketioxide (request heads, session admission) is in `front`.

mod front;

pub use front::{SessionLimit, SessionLimitLayer, detach_request_head, is_long_poll};

use super::{Context, peer_ip, wire};
use crate::{
    admission::{Admission, Permit, Refusal as AdmissionRefusal},
    auth::{AuthError, Claims, Jwt},
    config::Limits,
    disconnect::{self, Disconnect, DisconnectReason},
    event,
    filter::Filter,
    hub::{Hub, Outbound, Resume, Sink, SinkError, Transport},
    subscribe::{self, SubscribeError, SubscribeRequest, Subscriptions},
};
use front::Session;
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use socketioxide::{
    SendError, SocketError, SocketIo,
    extract::{AckSender, SocketRef, State, TryData},
    handler::ConnectHandler,
    layer::SocketIoLayer,
    socket::DisconnectReason as SioDisconnectReason,
};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::layer::util::Stack;

/// Each WebSocket's read buffer, allocated up front and zero-filled by
/// tungstenite before every read: engineioxide's 4 KiB default is RSS that
/// every idle connection pays. Clients send little (pongs, `subscribe`, the
/// connect packet with its token); a larger frame still arrives whole, as
/// tungstenite reserves a frame's full length once its header is read and
/// then reads it in pieces of this size.
const WS_READ_BUFFER_BYTES: usize = 1024;
/// How long a disconnect notice is retried while the peer's buffer is full.
const CLOSE_RETRY_FOR: Duration = Duration::from_secs(30);

/// The state socketioxide keeps. socketioxide keeps some sockets — and with
/// them this state and the hub — alive past `close` (engine sessions whose
/// namespace connect was refused stay open until the client leaves); that no
/// longer matters, as the server closes the store explicitly at shutdown.
///
/// socketioxide's `State` extractor clones the state for every handler call
/// (connect middleware, connect, disconnect, each `subscribe`); behind an
/// `Arc` that is a reference count instead of copies of the JWT keys and
/// limits.
#[derive(Clone)]
struct Ctx(Arc<Shared>);

struct Shared {
    hub: Arc<Hub>,
    jwt: Jwt,
    limits: Limits,
    admission: Arc<Admission>,
}

impl std::ops::Deref for Ctx {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The verified identity, resume point and filter, set by the connect middleware.
#[derive(Clone)]
struct Conn {
    claims: Claims,
    resume: Resume,
    filter: Option<Arc<Filter>>,
}

/// The connection's subscriptions, so a disconnect can release them all.
#[derive(Clone, Default)]
struct Subs(Arc<Mutex<Subscriptions>>);

impl Subs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `io(url, { auth: { token, since, epoch, filter } })`. `since`, `epoch` and `filter` stay
/// raw so that the subscribe path judges them (a `1e400` is a bad `since`, not a bad payload).
#[derive(Deserialize)]
pub(crate) struct ConnectAuth {
    pub(crate) token: Option<String>,
    pub(crate) since: Option<Box<RawValue>>,
    pub(crate) epoch: Option<Box<RawValue>>,
    pub(crate) filter: Option<Box<RawValue>>,
}

/// A connect refusal; its text is the `connect_error` message.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("unauthorized: {0}")]
    Auth(#[from] AuthError),
    #[error("{code}: {0}", code = .0.code())]
    Subscribe(#[from] SubscribeError),
    #[error("{code}: {0}", code = .0.code())]
    Admission(#[from] AdmissionRefusal),
}

/// Detaches a Socket.IO request from hyper's connection read buffer before
/// socketioxide sees it.
///
/// The Socket.IO layer: [`SessionLimit`] in front of socketioxide.
pub type Layers = Stack<SocketIoLayer, SessionLimitLayer>;

/// Builds the Socket.IO layer served at `/socket.io/`.
pub fn layer(ctx: Context) -> (Layers, SocketIo) {
    let limits = &ctx.limits;
    let (layer, io) = SocketIo::builder()
        .connect_timeout(limits.connect_timeout)
        .max_buffer_size(limits.queue_size)
        .max_payload(limits.max_message_bytes as u64)
        .ws_max_message_size(limits.max_message_bytes)
        .ws_max_frame_size(limits.max_message_bytes)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .ping_interval(limits.ping_interval)
        .ping_timeout(limits.ping_timeout)
        .with_state(Ctx(Arc::new(Shared {
            hub: ctx.hub.clone(),
            jwt: ctx.jwt.clone(),
            limits: ctx.limits.clone(),
            admission: ctx.admission.clone(),
        })))
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    let sessions = SessionLimitLayer(ctx.admission.clone());
    (Stack::new(layer, sessions), io)
}

async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<ConnectAuth>,
    State(ctx): State<Ctx>,
) -> Result<(), Refusal> {
    let result = admit(&socket, auth, &ctx);
    if let Err(refusal) = &result {
        if !matches!(refusal, Refusal::Admission(_)) {
            ctx.admission.refused(disconnect::refused::UNAUTHORIZED);
        }
        tracing::info!(transport = "socketio", socket = %socket.id, reason = %refusal, "connection refused");
    }
    result
}

fn admit(
    socket: &SocketRef,
    auth: Result<ConnectAuth, socketioxide::ParserError>,
    ctx: &Ctx,
) -> Result<(), Refusal> {
    let auth = auth.map_err(|_| AuthError::MissingToken)?;
    let claims = ctx.jwt.verify(auth.token.as_deref().unwrap_or_default())?;
    let (resume, filter) = subscribe::parse_start(
        auth.since.as_deref(),
        auth.epoch.as_deref(),
        auth.filter.as_deref(),
    )?;
    // The session's place, taken at its handshake ([`SessionLimit`]).
    let permit = match socket.req_parts().extensions.get::<Session>() {
        Some(Session(permit)) => permit.clone(),
        None => Arc::new(
            ctx.admission
                .admit(peer_ip(socket.req_parts()), Transport::SocketIo)?,
        ),
    };
    permit.set_quiet(false);
    let subs = Subscriptions::of(socket.id.to_string(), permit.opened_at().to_owned());
    socket.extensions.insert(Subs(Arc::new(Mutex::new(subs))));
    socket.extensions.insert(permit);
    socket.extensions.insert(Conn {
        claims,
        resume,
        filter,
    });
    Ok(())
}

async fn on_connect(socket: SocketRef, State(ctx): State<Ctx>) {
    // The middleware always sets `Conn`; without it a socket cannot be served.
    let hub = &ctx.hub;
    let Some(conn) = socket.extensions.get::<Conn>() else {
        let _ = socket.disconnect();
        return;
    };
    let subs = socket.extensions.get::<Subs>().unwrap_or_default();
    let sink: Arc<dyn Sink> = Arc::new(SocketSink {
        socket: socket.clone(),
    });
    let (resume, filter) = (conn.resume.clone(), conn.filter.clone());
    subs.lock()
        .join_own(hub, &conn.claims, resume, filter, sink);
    socket.extensions.insert(subs.clone());
    tracing::info!(transport = "socketio", socket = %socket.id, account = %conn.claims.account_id,
        user = %conn.claims.sub, since = ?conn.resume.since, epoch = ?conn.resume.epoch, "connection opened");

    socket.on("subscribe", on_subscribe);
    socket.on_disconnect(
        async |socket: SocketRef, reason: SioDisconnectReason, State(ctx): State<Ctx>| {
            release(&socket, Some(&ctx.hub), close_word(reason));
        },
    );
}

/// Releases a socket's subscriptions and connection slot and logs its close,
/// once. The hub's reason (set in `SocketSink::close`) wins over `reason`,
/// which from the engine would only say "server disconnect".
fn release(socket: &SocketRef, hub: Option<&Hub>, reason: &'static str) {
    if let Some(subs) = socket.extensions.remove::<Subs>() {
        match hub {
            Some(hub) => subs.lock().release(hub),
            None => subs.lock().clear(),
        }
    }
    if let Some(permit) = socket.extensions.remove::<Arc<Permit>>() {
        // The engine session may outlive its client; its place is freed with it.
        permit.set_quiet(true);
        permit.set_close_reason(reason);
        tracing::info!(transport = "socketio", socket = %socket.id, reason = permit.close_reason(),
            "connection closed");
    }
}

/// Ends every Socket.IO connection for shutdown: each is told why, then its
/// transport is closed, which socket.io clients answer by reconnecting (a
/// namespace disconnect first would stop them from doing so).
///
/// socketioxide 0.18's `close` neither runs the disconnect handlers nor
/// removes the sockets from their namespace, and a socket and its namespace
/// hold each other (and, through the namespace, our state and the hub, so the
/// store would never close). So the sockets are released here, and after the
/// transports are gone a namespace disconnect — which the departed clients
/// no longer receive — unlinks them.
pub async fn shutdown(io: &SocketIo, hub: &Hub) {
    let notice = Disconnect::SHUTDOWN.notice();
    let sockets = io.sockets();
    for socket in &sockets {
        let _ = socket.emit(disconnect::NOTICE_EVENT, &notice);
        release(socket, Some(hub), Disconnect::SHUTDOWN.word);
    }
    io.close().await;
    for socket in sockets {
        let _ = socket.disconnect();
    }
}

/// Socket.IO's disconnect reasons as the stable words of the metrics.
fn close_word(reason: SioDisconnectReason) -> &'static str {
    match reason {
        SioDisconnectReason::TransportClose | SioDisconnectReason::ClientNSDisconnect => {
            disconnect::CLIENT_CLOSED
        }
        SioDisconnectReason::TransportError => disconnect::TRANSPORT_ERROR,
        SioDisconnectReason::HeartbeatTimeout => Disconnect::PING_TIMEOUT.word,
        SioDisconnectReason::MultipleHttpPollingError | SioDisconnectReason::PacketParsingError => {
            Disconnect::BAD_REQUEST.word
        }
        SioDisconnectReason::ServerNSDisconnect => disconnect::SERVER_DISCONNECT,
        SioDisconnectReason::ClosingServer => Disconnect::SHUTDOWN.word,
    }
}

/// `{accountId, since?, epoch?, filter?}`: an admin watches another account.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribeEvent {
    account_id: String,
    since: Option<Value>,
    epoch: Option<Box<RawValue>>,
    filter: Option<Box<RawValue>>,
}

async fn on_subscribe(
    socket: SocketRef,
    TryData(req): TryData<SubscribeEvent>,
    ack: AckSender,
    State(ctx): State<Ctx>,
) {
    let answer = subscribe(&socket, req.map_err(|e| e.to_string()), &ctx).await;
    let _ = ack.send(&answer);
}

/// The ack: `{ok: true, seq: head}` (the account's latest seq when the
/// subscription was made), or `{error: {code, message}}`.
async fn subscribe(socket: &SocketRef, req: Result<SubscribeEvent, String>, ctx: &Ctx) -> Value {
    let error =
        |code: &str, message: String| json!({ "error": { "code": code, "message": message } });
    let refused = |e: SubscribeError| error(e.code(), e.to_string());
    let req = match req {
        Ok(req) => req,
        Err(e) => {
            return error(
                "bad_request",
                format!("subscribe takes {{accountId, since?, epoch?, filter?}}: {e}"),
            );
        }
    };
    let since = req.since.map(|v| serde_json::value::to_raw_value(&v));
    let since = match since.transpose() {
        Ok(since) => since,
        Err(_) => return refused(SubscribeError::BadSince),
    };
    let parsed = SubscribeRequest::parse(req.account_id, since.as_deref(), req.epoch.as_deref());
    let req = match parsed.and_then(|r| r.with_filter(req.filter.as_deref())) {
        Ok(req) => req,
        Err(e) => return refused(e),
    };
    let (Some(conn), Some(subs)) = (
        socket.extensions.get::<Conn>(),
        socket.extensions.get::<Subs>(),
    ) else {
        return refused(SubscribeError::NotAuthenticated);
    };
    let max = ctx.limits.max_subscriptions;
    if let Err(e) = subs.lock().check(Some(&conn.claims), &req, max) {
        return refused(e);
    }
    let hub = &ctx.hub;
    let (head, epoch) = match hub.history(&req.account_id, u64::MAX, 0).await {
        Ok(history) => (history.head, history.epoch),
        Err(_) => return error("unavailable", "store unavailable".into()),
    };
    let sink: Arc<dyn Sink> = Arc::new(SocketSink {
        socket: socket.clone(),
    });
    // Checked again: another subscribe may have landed while the head was read.
    match subs.lock().add(hub, Some(&conn.claims), req, max, sink) {
        Ok(()) => json!({ "ok": true, "seq": head, "epoch": epoch }),
        Err(e) => refused(e),
    }
}

struct SocketSink {
    socket: SocketRef,
}

impl Sink for SocketSink {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        let sent = match msg {
            Outbound::Event(p) => self
                .socket
                .emit(&p.event.event, &(&*p.event.data, wire::meta(p))),
            Outbound::Snapshot(s) => self.socket.emit(event::SNAPSHOT, s),
        };
        sent.map_err(|e| match e {
            SendError::Socket(SocketError::InternalChannelFull) => SinkError::Full,
            _ => SinkError::Closed,
        })
    }

    fn transport(&self) -> Transport {
        Transport::SocketIo
    }

    fn close(&self, reason: DisconnectReason) {
        if let Some(permit) = self.socket.extensions.get::<Arc<Permit>>() {
            permit.set_close_reason(reason.code());
        }
        let socket = self.socket.clone();
        // A peer already gone is not told anything, only disconnected.
        let notice = reason.server_close().map(Disconnect::notice);
        tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + CLOSE_RETRY_FOR;
            let mut told = notice.is_none();
            while tokio::time::Instant::now() < give_up && socket.connected() {
                // Only a full buffer is worth waiting for; any other error means the socket is gone.
                if let (false, Some(notice)) = (told, notice) {
                    match socket.emit(disconnect::NOTICE_EVENT, &notice) {
                        Ok(()) => told = true,
                        Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
                        Err(_) => return,
                    }
                }
                if told {
                    match socket.clone().disconnect() {
                        Err(SocketError::InternalChannelFull) => {}
                        _ => return,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}
