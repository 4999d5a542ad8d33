//! Raw WebSocket at `/ws`, for clients that want the hub without a
//! Socket.IO library: JSON text frames exactly as the contract shows.
//!
//! The transport owns its socket once upgraded (hyper hands the TCP stream
//! over, [`crate::http::upgraded_stream`]): server frames are written by
//! [`out::Out`] straight from whoever produces them — the hub's fan-out
//! included — and tungstenite only decodes the client's frames
//! ([`connection`]). A connection's queue is bounded; the hub's
//! [`Sink::try_send`] never waits, so a full queue is the slow-consumer
//! signal and the hub cuts the connection off instead of waiting. Events are
//! sent as the frame the hub's event encoded once for every subscriber
//! ([`wire::ws_frame`]).
//!
//! The connection's own task reads client frames, pings the peer and watches
//! for shutdown; whoever decides the connection must end (the hub, the
//! reader, shutdown) records an [`Ending`] once, and the connection says
//! goodbye with the matching close code. The codes are defined (and tabled)
//! in [`crate::disconnect`] and listed for users in docs/OPERATIONS.md; more
//! than [`MAX_BAD_FRAMES`] malformed frames close with `bad_request`.
//!
//! Subscribing (the own account on auth, others with `subscribe` frames)
//! follows the one subscribe path, [`crate::subscribe`].

mod connection;
mod out;

use super::{Context, PeerIp, refusal_error};
use crate::{
    admission::Permit,
    api::ApiError,
    auth::{self, AuthError, Claims},
    disconnect::{self, Disconnect, DisconnectReason},
    hub::Transport,
    subscribe::{self, Start},
};
use axum::{
    Router,
    body::Body,
    extract::{Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
    routing::get,
};
use connection::Connection;
use hyper::upgrade::OnUpgrade;
use out::Writer;
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

/// Malformed frames a connection may send (each answered with an `error`
/// frame) before it is closed: enough for a client bug to be visible, not
/// enough to keep the server parsing garbage.
pub const MAX_BAD_FRAMES: u32 = 10;
/// How long the goodbye (queued frames, close frame, the peer's close reply)
/// may take before the connection is dropped regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// tungstenite's read buffer, allocated up front (128 KiB by default, most
/// of an idle connection's memory) and zero-filled before each read; client
/// frames are small, and a larger one grows the buffer as needed. 1 KiB
/// instead of 4 KiB took an idle connection from 12.1 KB to 9.5 KB of server
/// RSS (docs/PERFORMANCE.md).
const READ_BUFFER: usize = 1024;

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

/// The `/ws` route, and its writer task (running until shutdown).
pub fn router(ctx: Context) -> Router {
    let writer = Arc::new(Writer::default());
    tokio::spawn(writer.clone().run(ctx.shutdown.clone()));
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(WsState { ctx, writer })
}

#[derive(Clone)]
struct WsState {
    ctx: Context,
    writer: Arc<Writer>,
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
    State(WsState { ctx, writer }): State<WsState>,
    PeerIp(ip): PeerIp,
    query: Result<Query<WsQuery>, QueryRejection>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let accept = accept_key(request.headers())?;
    let on_upgrade = request
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or_else(|| {
            upgrade_required(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            )
        })?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let permit = ctx
        .admission
        .admit(ip, Transport::WebSocket)
        .map_err(refusal_error)?;
    let token = request
        .headers()
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
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        match crate::http::upgraded_stream(upgraded) {
            Some((tcp, read)) => {
                let conn = Connection::new(ctx, tcp, read, &writer, &permit);
                serve(conn, permit, credential, start).await;
            }
            None => {
                tracing::error!("websocket upgrade on a connection the HTTP layer did not accept")
            }
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

fn upgrade_required(status: StatusCode, message: &str) -> ApiError {
    ApiError::new(status, "upgrade_required", message.to_owned())
}

/// Checks the upgrade request's headers (RFC 6455 §4.2.1) and derives the
/// `Sec-WebSocket-Accept` answer.
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let bad = |message| Err(upgrade_required(StatusCode::BAD_REQUEST, message));
    if !has_token(header::CONNECTION, "upgrade") {
        return bad("Connection header did not include 'upgrade'");
    }
    if !has_token(header::UPGRADE, "websocket") {
        return bad("`Upgrade` header did not include 'websocket'");
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return bad("`Sec-WebSocket-Version` header did not include '13'");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad("`Sec-WebSocket-Key` header missing");
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).or_else(|_| bad("`Sec-WebSocket-Key` header is not valid"))
}

async fn serve(mut conn: Box<Connection>, permit: Permit, credential: Credential, start: Start) {
    let id = conn.id();
    tracing::info!(transport = "websocket", connection = id, ip = %permit.ip(), "connection opened");
    conn.start(credential, start);
    let ended = conn.run().await;
    permit.set_close_reason(ended.ending.word());
    let code = match ended.ending {
        Ending::Server(close) => Some(close.ws_code),
        Ending::Peer(_) => None,
    };
    tracing::info!(
        transport = "websocket",
        connection = id,
        account = ended.account.as_deref(),
        reason = ended.ending.word(),
        code,
        duration_ms = ended.lasted.as_millis() as u64,
        "connection closed"
    );
    // A lingering close, as the HTTP layer does for the connections it closes.
    tokio::spawn(async move { crate::http::linger(&ended.tcp).await });
}
