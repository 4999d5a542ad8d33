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
//! follows the one subscribe path, [`crate::subscribe`].

use super::{Context, peer_ip, peer_ip_in, refusal_error, wire};
use crate::{
    admission::{Admission, Permit, Refusal as AdmissionRefusal},
    auth::{AuthError, Claims, Jwt},
    config::Limits,
    disconnect::{self, Disconnect, DisconnectReason},
    event,
    hub::{Hub, Outbound, Sink, SinkError, Transport},
    subscribe::{self, SubscribeError, SubscribeRequest, Subscriptions},
};
use axum::{
    BoxError,
    body::{Body, Bytes, HttpBody},
    extract::{OriginalUri, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header},
    response::{IntoResponse, Response},
};
use futures::{
    TryFutureExt,
    future::{Either, MapOk, Ready, ready},
};
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
    task::Poll,
    time::Duration,
};
use tower::{Layer, Service, layer::util::Stack};

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

/// The verified identity and resume point, set by the connect middleware.
#[derive(Clone)]
struct Conn {
    claims: Claims,
    since: Option<u64>,
}

/// The connection's subscriptions, so a disconnect can release them all.
#[derive(Clone, Default)]
struct Subs(Arc<Mutex<Subscriptions>>);

impl Subs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `io(url, { auth: { token, since } })`. `since` stays raw so that the
/// subscribe path judges it (a `1e400` is a bad `since`, not a bad payload).
#[derive(Deserialize)]
pub(crate) struct ConnectAuth {
    pub(crate) token: Option<String>,
    pub(crate) since: Option<Box<RawValue>>,
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
/// hyper parses the request line and header values as `Bytes` views of the
/// connection's read buffer (16 KiB once the first read went through
/// hyper-util's protocol sniffing), and engineioxide keeps the handshake
/// request's `Parts` for the whole life of the session. Any one view keeps
/// the whole buffer alive: ~16 KiB per open connection. So the URI is copied,
/// only the headers the Socket.IO stack reads are kept, as copies (browsers
/// send cookies and the like, which would otherwise stay in memory for the
/// connection's life), and an axum `OriginalUri` (a router's clone of the
/// URI, present if this ever runs inside a `Router`) is dropped.
/// This must run directly outside the Socket.IO layers ([`layer`]): the
/// origin and CORS checks further out still see every header.
pub fn detach_request_head(request: Request) -> Request {
    if !request.uri().path().starts_with("/socket.io/") {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = owned_uri(&parts.uri);
    parts.headers = kept_headers(&parts.headers);
    parts.extensions.remove::<OriginalUri>();
    Request::from_parts(parts, body)
}

/// What engineioxide reads: the WebSocket key to answer the upgrade, and a
/// polling POST's content type. Our handlers read none (the peer address
/// is an extension). A handler that needs another header must add it here.
const KEPT_HEADERS: [HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

fn owned_uri(uri: &Uri) -> Uri {
    // Re-parsing what `Uri` printed cannot fail; keep the original if it ever does.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn kept_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(KEPT_HEADERS.len());
    for name in KEPT_HEADERS {
        if let Some(value) = headers.get(&name)
            && let Ok(copy) = HeaderValue::from_bytes(value.as_bytes())
        {
            kept.insert(name, copy);
        }
    }
    kept
}

/// Engine.IO's polling GET on an open session: a long poll that only waits
/// for packets to send (what a client says comes in POSTs), so shutdown may
/// cut it once every client was told to leave.
pub fn is_long_poll(method: &axum::http::Method, uri: &axum::http::Uri) -> bool {
    method == axum::http::Method::GET
        && uri.path().starts_with("/socket.io/")
        && uri
            .query()
            .is_some_and(|q| q.contains("transport=polling") && q.contains("sid="))
}

/// An Engine.IO session's place in the connection limits. Taken at the
/// handshake and kept in the handshake request's extensions, which
/// engineioxide holds for the session's whole life: the place is released
/// when the session ends, whether or not a Socket.IO client joined it.
#[derive(Clone)]
struct Session(Arc<Permit>);

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

/// Admits each Engine.IO session at its handshake (see [`SessionLimit`]).
#[derive(Clone)]
pub struct SessionLimitLayer(Arc<Admission>);

impl<S> Layer<S> for SessionLimitLayer {
    type Service = SessionLimit<S>;

    fn layer(&self, inner: S) -> SessionLimit<S> {
        SessionLimit {
            inner,
            admission: self.0.clone(),
        }
    }
}

/// Counts Engine.IO sessions against the connection limits from their
/// handshake: a request that would open one is admitted (or refused with
/// the contract's 429/503) before socketioxide sees it. Other requests pass
/// untouched. A plain service, not a middleware: no boxed future per request.
#[derive(Clone)]
pub struct SessionLimit<S> {
    inner: S,
    admission: Arc<Admission>,
}

type Passed<F, B> = MapOk<F, fn(axum::http::Response<B>) -> Response>;

impl<S, B> Service<Request> for SessionLimit<S>
where
    S: Service<Request, Response = axum::http::Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, Passed<S::Future, B>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if opens_session(request.method(), request.uri()) {
            let ip = peer_ip_in(request.extensions());
            match self.admission.admit(ip, Transport::SocketIo) {
                Ok(permit) => {
                    // Nobody to say goodbye to until a client joins.
                    permit.set_quiet(true);
                    request.extensions_mut().insert(Session(Arc::new(permit)));
                }
                Err(refusal) => {
                    tracing::info!(transport = "socketio", ip = ?ip, reason = %refusal,
                        "session refused");
                    return Either::Left(ready(Ok(refusal_error(refusal).into_response())));
                }
            }
        }
        let into_response: fn(axum::http::Response<B>) -> Response = |r| r.map(Body::new);
        Either::Right(self.inner.call(request).map_ok(into_response))
    }
}

/// Whether engineioxide would open a new session for this request: a GET on
/// the Socket.IO path without a `sid` (its own test, in its request parser).
/// Requests it then rejects (no transport, a bad `EIO`) release their place
/// as soon as they are answered.
fn opens_session(method: &Method, uri: &Uri) -> bool {
    let path = uri.path();
    method == Method::GET
        && (path == "/socket.io" || path.starts_with("/socket.io/"))
        && !uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="))
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
    let since = subscribe::parse_since(auth.since.as_deref())?;
    // The session's place, taken at its handshake ([`SessionLimit`]).
    let permit = match socket.req_parts().extensions.get::<Session>() {
        Some(Session(permit)) => permit.clone(),
        None => Arc::new(
            ctx.admission
                .admit(peer_ip(socket.req_parts()), Transport::SocketIo)?,
        ),
    };
    permit.set_quiet(false);
    socket.extensions.insert(permit);
    socket.extensions.insert(Conn { claims, since });
    Ok(())
}

async fn on_connect(socket: SocketRef, State(ctx): State<Ctx>) {
    // The middleware always sets `Conn`; without it a socket cannot be served.
    let hub = &ctx.hub;
    let Some(conn) = socket.extensions.get::<Conn>() else {
        let _ = socket.disconnect();
        return;
    };
    let subs = Subs::default();
    let sink: Arc<dyn Sink> = Arc::new(SocketSink {
        socket: socket.clone(),
    });
    subs.lock().join_own(hub, &conn.claims, conn.since, sink);
    socket.extensions.insert(subs.clone());
    tracing::info!(transport = "socketio", socket = %socket.id, account = %conn.claims.account_id,
        user = %conn.claims.sub, since = ?conn.since, "connection opened");

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

/// `{accountId, since?}`: an admin watches another account.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribeEvent {
    account_id: String,
    since: Option<Value>,
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
                format!("subscribe takes {{accountId, since?}}: {e}"),
            );
        }
    };
    let since = req.since.map(|v| serde_json::value::to_raw_value(&v));
    let since = match since.transpose() {
        Ok(since) => since,
        Err(_) => return refused(SubscribeError::BadSince),
    };
    let req = match SubscribeRequest::parse(req.account_id, since.as_deref()) {
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
    let head = match hub.history(&req.account_id, u64::MAX, 0).await {
        Ok(history) => history.head,
        Err(_) => return error("unavailable", "store unavailable".into()),
    };
    let sink: Arc<dyn Sink> = Arc::new(SocketSink {
        socket: socket.clone(),
    });
    // Checked again: another subscribe may have landed while the head was read.
    match subs.lock().add(hub, Some(&conn.claims), req, max, sink) {
        Ok(()) => json!({ "ok": true, "seq": head }),
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
