//! The ways browsers connect. Each transport authenticates the client, asks
//! the hub for subscriptions and implements the hub's [`Sink`](crate::hub::Sink)
//! over its own wire format. Transports never touch the store.
//!
//! How events look on each wire is in [`wire`]; who may subscribe to what is
//! decided in [`crate::subscribe`]; the ways a connection ends are listed in
//! [`crate::disconnect`].
//!
//! What they share lives here: the [`Context`] every transport is built from
//! (one hub, one admission control), the peer address, and the mapping of an
//! admission refusal to the contract's HTTP error.

pub mod origin;
pub mod socketio;
pub mod sse;
pub mod wire;
pub mod ws;

use crate::{
    admission::{Admission, Refusal},
    api::ApiError,
    auth::{ApiKeys, Jwt},
    config::Limits,
    hub::Hub,
};
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{Extensions, StatusCode, request::Parts},
};
use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
};
use tokio_util::sync::CancellationToken;

/// Everything a transport needs; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub hub: Arc<Hub>,
    pub jwt: Jwt,
    pub keys: ApiKeys,
    pub limits: Limits,
    pub admission: Arc<Admission>,
    /// The server's shutdown signal: when it fires, every connection tells
    /// its client to reconnect and ends.
    pub shutdown: CancellationToken,
}

/// The peer's IP address, when the server was started with connect info.
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(PeerIp(peer_ip(parts)))
    }
}

pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    peer_ip_in(&parts.extensions)
}

/// [`peer_ip`] from a request's extensions.
pub fn peer_ip_in(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// A connection refused by admission control, as the contract's HTTP error:
/// 429 when this address holds too many, 503 when the node is full or
/// shutting down; both say when to retry.
pub fn refusal_error(refusal: Refusal) -> ApiError {
    let status = match refusal {
        Refusal::PerIp(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::OverCapacity(_) | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError {
        retry_after_secs: Some(1),
        ..ApiError::new(status, refusal.code(), refusal.to_string())
    }
}

/// A process-wide connection number for log lines (Socket.IO has its own ids).
pub fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
