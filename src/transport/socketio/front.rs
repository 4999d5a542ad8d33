//! The HTTP side in front of socketioxide: what a `/socket.io/` request
//! keeps of its head ([`detach_request_head`]), which requests are long polls
//! ([`is_long_poll`]), and the admission of each Engine.IO session at its
//! handshake ([`SessionLimit`]).
//!
//! Apart from the Socket.IO handlers (the parent module) because it works on
//! plain HTTP requests, before any session or socket exists.

use super::super::{peer_ip_in, refusal_error};
use crate::{
    admission::{Admission, Permit},
    hub::Transport,
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
use std::{sync::Arc, task::Poll};
use tower::{Layer, Service};

/// hyper parses the request line and header values as `Bytes` views of the
/// connection's read buffer (16 KiB once the first read went through
/// hyper-util's protocol sniffing), and engineioxide keeps the handshake
/// request's `Parts` for the whole life of the session. Any one view keeps
/// the whole buffer alive: ~16 KiB per open connection. So the URI is copied,
/// only the headers the Socket.IO stack reads are kept, as copies (browsers
/// send cookies and the like, which would otherwise stay in memory for the
/// connection's life), and an axum `OriginalUri` (a router's clone of the
/// URI, present if this ever runs inside a `Router`) is dropped.
/// This must run directly outside the Socket.IO layers ([`super::layer`]): the
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
pub(super) struct Session(pub(super) Arc<Permit>);

/// Admits each Engine.IO session at its handshake (see [`SessionLimit`]).
#[derive(Clone)]
pub struct SessionLimitLayer(pub(super) Arc<Admission>);

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
