//! Wires config → store → hub → API and transports, and serves them on a
//! listener the caller owns until the caller's shutdown future resolves.

use crate::{
    admission::Admission,
    api::{self, AppState},
    auth::{ApiKeys, Jwt},
    config::Config,
    heartbeat::{Heartbeat, HeartbeatError},
    hub::Hub,
    rate_limit::PublishLimiter,
    store::{StoreError, Stores},
    transport::{self, origin::OriginPolicy},
};
use axum::{
    ServiceExt,
    http::{HeaderName, Method, header},
    middleware,
    serve::ListenerExt,
};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::mpsc};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Committed events waiting for the dispatcher; a full channel slows the
/// store's writer, never a subscriber.
const FEED_CAPACITY: usize = 4096;
/// How long shutdown waits for in-flight requests after closing sockets.
const DRAIN_FOR: Duration = Duration::from_secs(10);
/// How long shutdown waits for upgraded WebSockets to say goodbye (they
/// are not tracked by the HTTP server; each gives up on its own within 2 s).
const CONNECTIONS_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the store to flush and close.
const STORE_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{setting} is invalid: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("heartbeat: {0}")]
    Heartbeat(#[from] HeartbeatError),
}

/// Runs the hub on `listener` until `shutdown` resolves, then stops
/// accepting, tells client connections to reconnect (they resume elsewhere
/// or after a restart), finishes in-flight requests and returns once the
/// store is flushed — each step bounded in time.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if config.redis_url.is_some() {
        return Err(ServerError::Config {
            setting: "STATUSHUB_REDIS_URL (--redis-url)",
            reason: "cluster mode on Redis is not available in this build yet; unset it to run a single node".into(),
        });
    }
    let origins =
        OriginPolicy::new(&config.allowed_origins).map_err(|reason| ServerError::Config {
            setting: "STATUSHUB_ALLOWED_ORIGINS (--allowed-origins)",
            reason,
        })?;
    let (feed_tx, feed_rx) = mpsc::channel(FEED_CAPACITY);
    // Moved apart, not kept whole: the store closes when its last holder lets go.
    let Stores { log, monitors } = Stores::sqlite(&config.data_dir, config.retention, feed_tx)?;
    let hub = Hub::start(log, feed_rx, config.limits.clone());
    let store_closed = hub.stopped();
    let heartbeat = Arc::new(Heartbeat::start(hub.clone(), monitors, &config.monitors).await?);
    let jwt = Jwt::new(&config.jwt_secret);
    let keys = ApiKeys::new(&config.api_keys);
    let admission = Admission::new(&config.limits, hub.metrics.clone());
    let ctx = transport::Context {
        hub: hub.clone(),
        jwt: jwt.clone(),
        keys: keys.clone(),
        limits: config.limits.clone(),
        admission: admission.clone(),
    };

    let (sio_layer, io) = transport::socketio::layer(ctx.clone());
    let sio_hub = hub.clone();
    let limits = &config.limits;
    let state = AppState {
        hub,
        jwt,
        keys,
        max_body_bytes: limits.max_body_bytes,
        publish_limit: Arc::new(PublishLimiter::new(
            limits.publish_rate,
            limits.publish_burst,
            config.api_keys.len(),
        )),
        heartbeat: heartbeat.clone(),
    };
    let routes = api::router(state)
        .merge(transport::ws::router(ctx.clone()))
        .merge(transport::sse::router(ctx))
        .merge(crate::openapi::router());
    // Socket.IO and the checks every request gets run in front of the router,
    // not as `Router::layer`s: a router clones its matched route's whole
    // service stack (the API's state included) for every request, which was
    // ~8 % of the instructions spent per Socket.IO connection. Outermost first.
    let app = ServiceBuilder::new()
        .layer(cors(origins.clone()))
        .layer(middleware::from_fn_with_state(
            (origins, admission.clone()),
            transport::origin::guard,
        ))
        // Directly outside socketioxide, so the request it keeps is already
        // detached. A plain request map: no boxed future per request.
        .map_request(transport::socketio::detach_request_head)
        .layer(sio_layer)
        .service(routes);

    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let closing = admission.clone();
    let stopping = heartbeat.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: refusing new connections, closing client connections");
        // No health change is published once shutdown has begun.
        stopping.stop().await;
        // WebSockets close with 1012, SSE streams end, newcomers get 503.
        closing.begin_shutdown();
        transport::socketio::shutdown(&io, &sio_hub).await;
        drop(sio_hub);
        let _ = drained_tx.send(());
    };
    // Nagle's algorithm holds a small write back until the previous one is
    // acknowledged, and clients delay ACKs by up to 40 ms: every handshake
    // that answers in two writes (HTTP 101, then Engine.IO's open packet), and
    // every event behind an unacknowledged one, would wait for it.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
    tokio::select! {
        result = serve => result?,
        // Requests still running long after the signal are abandoned; nothing
        // they hold was acknowledged.
        _ = async { let _ = drained_rx.await; tokio::time::sleep(DRAIN_FOR).await } => {
            tracing::warn!("in-flight requests did not finish in time; exiting anyway");
        }
    }
    heartbeat.stop().await;
    // The heartbeat holds the hub and the store; it must let go for the store to close.
    drop(heartbeat);
    let open = admission.wait_until_idle(CONNECTIONS_GRACE).await;
    if open > 0 {
        tracing::warn!(
            open,
            "connections still open after the grace period; exiting anyway"
        );
    }
    // Every handle to the hub is gone now (or stuck in an abandoned task):
    // the store's writer commits what it holds, checkpoints and stops.
    if tokio::time::timeout(STORE_GRACE, store_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            "store did not close in time; its last commits are durable, the WAL is not checkpointed"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// CORS answers from the same origin policy that guards WebSocket upgrades.
fn cors(origins: OriginPolicy) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            origins.allows_cors(origin, parts)
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
}
