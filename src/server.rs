//! Wires config → store → hub → API and transports, and serves them on a
//! listener the caller owns until the caller's shutdown future resolves.

use crate::{
    api::{self, AppState},
    auth::{ApiKeys, Jwt},
    config::Config,
    heartbeat::{Heartbeat, HeartbeatError},
    hub::Hub,
    store::{SqliteStore, Store, StoreError},
    transport,
};
use axum::http::{HeaderValue, Method, header};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::mpsc};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Committed events waiting for the dispatcher; a full channel slows the
/// store's writer, never a subscriber.
const FEED_CAPACITY: usize = 4096;
/// How long shutdown waits for in-flight requests after closing sockets.
const DRAIN_FOR: Duration = Duration::from_secs(10);

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

/// Runs the hub on `listener` until `shutdown` resolves, then closes client
/// connections (they reconnect and resume elsewhere or after a restart),
/// finishes in-flight requests and returns once the store is flushed.
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
    let (feed_tx, feed_rx) = mpsc::channel(FEED_CAPACITY);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        &config.data_dir,
        config.retention,
        feed_tx,
    )?);
    let hub = Hub::start(store.clone(), feed_rx, config.limits.clone());
    let heartbeat = Arc::new(Heartbeat::start(hub.clone(), store, &config.monitors).await?);
    let jwt = Jwt::new(&config.jwt_secret);

    let (sio_layer, io) = transport::socketio::layer(hub.clone(), jwt.clone(), &config.limits);
    let state = AppState {
        hub,
        jwt,
        keys: ApiKeys::new(&config.api_keys),
        max_body_bytes: config.limits.max_body_bytes,
        heartbeat: heartbeat.clone(),
    };
    let app = api::router(state)
        .layer(sio_layer)
        .layer(cors(&config.allowed_origins)?);

    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = heartbeat.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: closing client connections");
        // No health change is published once shutdown has begun.
        stopping.stop().await;
        io.close().await;
        let _ = drained_tx.send(());
    };
    let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
    tokio::select! {
        result = serve => result?,
        // Requests still running long after the signal are abandoned; nothing
        // they hold was acknowledged.
        _ = async { let _ = drained_rx.await; tokio::time::sleep(DRAIN_FOR).await } => {
            tracing::warn!("in-flight requests did not finish in time; exiting anyway");
        }
    }
    heartbeat.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Same origin only unless origins are listed.
fn cors(origins: &[String]) -> Result<CorsLayer, ServerError> {
    let values = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| ServerError::Config {
                setting: "STATUSHUB_ALLOWED_ORIGINS (--allowed-origins)",
                reason: format!("{o:?} is not a valid origin"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(values))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            "idempotency-key".parse().expect("static header"),
        ]))
}
