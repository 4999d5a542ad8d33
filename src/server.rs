//! Wires config → store → hub → API and transports, and serves them on a
//! listener the caller owns until the caller's shutdown future resolves; then
//! stops everything in one written order (see [`Server::serve`]).

use crate::{
    admission::Admission,
    api::{self, AppState},
    auth::{ApiKeys, Jwt},
    cluster::{Node, StoreKind},
    config::{Config, Retention},
    heartbeat::{Heartbeat, HeartbeatError},
    http::{self, Shutdown, Timeouts},
    hub::Hub,
    jobs::{self, Jobs},
    page,
    presence::Presence,
    rate_limit::PublishLimiter,
    store::{ConnectError, FanoutStats, Feed, RedisSettings, RedisStore, StoreError, Stores},
    transport::{self, origin::OriginPolicy},
    webhooks::Webhooks,
};
use axum::{
    http::{HeaderName, Method, header},
    middleware,
};
use std::{future::Future, io, path::Path, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Committed events waiting for the dispatcher; a full channel slows the
/// store's writer, never a subscriber.
const FEED_CAPACITY: usize = 4096;
/// Shutdown's stages, each bounded; their sum (9 s) is what docs/OPERATIONS.md
/// promises, under the 10 s Docker and 30 s Kubernetes wait before SIGKILL.
/// With no clients the whole shutdown takes milliseconds.
///
/// How long monitor results being recorded may take to land.
const HEARTBEAT_GRACE: Duration = Duration::from_secs(1);
/// How long in-flight HTTP requests may take to finish once the signal fired.
const DRAIN_FOR: Duration = Duration::from_secs(4);
/// How long upgraded connections (WebSocket, Socket.IO) may take after the
/// drain to say goodbye; each gives up on its own within 2 s of the signal.
const CONNECTIONS_GRACE: Duration = Duration::from_secs(2);
/// How long the store may take to flush, checkpoint and close.
const STORE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store could not be opened in the data directory; `reason` is the
    /// cause in plain words ("permission denied", "not a directory", …).
    #[error("cannot open the store in {dir} (STATUSHUB_DATA_DIR, --data-dir): {reason}")]
    DataDir { dir: String, reason: String },
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

/// Runs the hub on `listener` until `shutdown` resolves: [`Server::open`]
/// then [`Server::serve`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::open(config).await?.serve(listener, shutdown).await
}

/// A hub that is ready: its store is open and its heartbeat running. Only
/// [`Server::serve`] lets clients in, so a caller can announce the hub once
/// `open` succeeded and never before start-up can still fail.
pub struct Server {
    config: Config,
    origins: OriginPolicy,
    stores: Stores,
    hub: Arc<Hub>,
    heartbeat: Arc<Heartbeat>,
    jobs: Arc<Jobs>,
    admission: Arc<Admission>,
    /// Cross-node fan-out figures (Redis mode only).
    fanout: Option<Arc<FanoutStats>>,
    /// This node: id, leases, store round trip.
    node: Arc<Node>,
    /// This node's connections, published for every node (`GET …/presence`).
    presence: Arc<Presence>,
    webhooks: Arc<Webhooks>,
    /// The server's shutdown signal: transports end their connections on
    /// it, admission refuses newcomers, the HTTP layer stops accepting.
    signal: CancellationToken,
}

impl Server {
    /// Validates what the config alone cannot, opens the store and starts
    /// the hub and the heartbeat.
    pub async fn open(config: Config) -> Result<Server, ServerError> {
        let origins =
            OriginPolicy::new(&config.allowed_origins).map_err(|reason| ServerError::Config {
                setting: "STATUSHUB_ALLOWED_ORIGINS (--allowed-origins)",
                reason,
            })?;
        let (feed_tx, feed_rx) = mpsc::channel(FEED_CAPACITY);
        let (stores, fanout) = match &config.redis_url {
            Some(url) => {
                let store = Arc::new(open_redis(url, &config, feed_tx).await?);
                let fanout = store.fanout_stats();
                let stores = Stores {
                    presence: store.clone(),
                    ..Stores::shared(store)
                };
                (stores, Some(fanout))
            }
            None => (
                open_store(&config.data_dir, config.retention, feed_tx)?,
                None,
            ),
        };
        let hub = Hub::start(stores.log.clone(), feed_rx, config.limits.clone());
        let kind = match config.redis_url {
            Some(_) => StoreKind::Redis,
            None => StoreKind::Sqlite,
        };
        let node = Arc::new(Node::start(kind, stores.log.clone(), stores.leases.clone()));
        let leases = node.leases.clone();
        let heartbeat = match Heartbeat::start_recording(
            hub.clone(),
            stores.monitors.clone(),
            stores.history.clone(),
            leases,
            &config.monitors,
        )
        .await
        {
            Ok(heartbeat) => Arc::new(heartbeat),
            Err(e) => {
                hub.stop();
                let _ = stores.close().await;
                return Err(e.into());
            }
        };
        let jobs = Jobs::new(stores.jobs.clone(), hub.clone(), jobs::system_clock());
        let signal = CancellationToken::new();
        let admission = Admission::new(&config.limits, hub.metrics.clone(), signal.clone());
        let presence = Arc::new(Presence::new(
            node.id().to_owned(),
            hub.clone(),
            stores.presence.clone(),
            config.limits.presence_ttl,
        ));
        let webhooks = Webhooks::new(
            stores.webhooks.clone(),
            stores.outbox.clone(),
            config.webhooks.clone(),
        );
        // The dispatcher stops with the signal (stage 2 of the shutdown
        // order), before the store closes.
        webhooks.start(signal.clone());
        Ok(Server {
            config,
            origins,
            stores,
            hub,
            heartbeat,
            jobs,
            admission,
            fanout,
            node,
            presence,
            webhooks,
            signal,
        })
    }

    /// Serves the hub on `listener` until `shutdown` resolves, then stops in
    /// the order below and returns once the store is closed — each stage
    /// bounded in time.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            config,
            origins,
            stores,
            hub,
            heartbeat,
            jobs,
            admission,
            fanout,
            node,
            presence,
            webhooks,
            signal,
        } = self;
        // The sync job sweeper (stale jobs, due retries) stops with the signal,
        // before the store closes.
        tokio::spawn(jobs.clone().run_sweeper(signal.clone(), jobs::SWEEP_EVERY));
        // Publishes this node's connections until the signal, then withdraws them.
        let presence_task = tokio::spawn(presence.clone().run(signal.clone()));
        // Dropped without its shutdown (the task aborted), the server leaves
        // as a dead process would: monitors are no longer checked here and
        // their leases run out on their own.
        let _halt = HaltOnDrop(heartbeat.clone());
        let jwt = Jwt::new(&config.jwt_secret);
        let keys = ApiKeys::new(&config.api_keys);
        let ctx = transport::Context {
            hub: hub.clone(),
            jwt: jwt.clone(),
            keys: keys.clone(),
            limits: config.limits.clone(),
            admission: admission.clone(),
            shutdown: signal.clone(),
        };

        let (sio_layer, io) = transport::socketio::layer(ctx.clone());
        let limits = &config.limits;
        let state = AppState {
            hub: hub.clone(),
            jwt,
            keys,
            max_body_bytes: limits.max_body_bytes,
            publish_limit: Arc::new(PublishLimiter::shared(
                limits.publish_rate,
                limits.publish_burst,
                &config.api_keys,
                stores.rates.clone(),
            )),
            heartbeat: heartbeat.clone(),
            fanout,
            history: stores.history.clone(),
            jobs,
            node: node.clone(),
            presence,
            webhooks,
        };
        let routes = api::router(state)
            .merge(transport::ws::router(ctx.clone()))
            .merge(transport::sse::router(ctx))
            .merge(page::router())
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
        let timeouts = Timeouts {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
        };
        let polls_answered = CancellationToken::new();
        let serving = http::serve(
            listener,
            app,
            admission.clone(),
            timeouts,
            transport::socketio::is_long_poll,
            Shutdown {
                signal: signal.clone(),
                polls_answered: polls_answered.clone(),
                drain: DRAIN_FOR,
            },
        );

        // The shutdown order. Each stage is bounded; see the constants.
        let stopping = async {
            shutdown.await;
            tracing::info!("shutting down: refusing new connections, closing client connections");
            // 1. The heartbeat stops first: no health change is published
            //    once clients are being told to leave.
            if tokio::time::timeout(HEARTBEAT_GRACE, heartbeat.stop())
                .await
                .is_err()
            {
                tracing::warn!("monitor results still being recorded were abandoned");
            }
            // 2. The signal: the HTTP layer stops accepting and closes
            //    connections with no request in flight; WebSockets close
            //    with 1012 and SSE streams end (each after what is queued
            //    for it); admission refuses newcomers with 503.
            signal.cancel();
            // 3. Socket.IO is told apart: socketioxide owns its sockets.
            if tokio::time::timeout(CONNECTIONS_GRACE, transport::socketio::shutdown(&io, &hub))
                .await
                .is_err()
            {
                tracing::warn!("Socket.IO connections did not close in time");
            }
            // Every client was told: Engine.IO long polls still open belong
            // to sessions socketioxide no longer closes (their namespace
            // socket is gone, their client too) and are cut.
            polls_answered.cancel();
        };
        // 4. In-flight HTTP requests (publishes included) finish, at most
        //    DRAIN_FOR after the signal; then they are cut (nothing they hold
        //    was acknowledged).
        let (cut, ()) = tokio::join!(serving, stopping);
        if cut > 0 {
            tracing::warn!(
                cut,
                "in-flight requests did not finish in time; their connections were cut"
            );
        }
        // 5. Upgraded connections say goodbye and release their permits.
        let open = admission.wait_until_idle(CONNECTIONS_GRACE).await;
        if open > 0 {
            tracing::warn!(
                open,
                "connections still open after the grace period; exiting anyway"
            );
        }
        // 6. Background tasks (the hub's dispatcher and retention trim) stop:
        //    no client is left to fan out to.
        hub.stop();
        node.stop();
        let _ = tokio::time::timeout(STORE_GRACE, presence_task).await;
        // 7. The store commits what it holds, checkpoints the WAL and
        //    refuses anything later (a request abandoned above gets
        //    `Unavailable`, never a half-write).
        match tokio::time::timeout(STORE_GRACE, stores.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "store did not close cleanly"),
            Err(_) => tracing::warn!(
                "store did not close in time; its last commits are durable, the WAL is not checkpointed"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the SQLite store in `dir`. SQLite reports a directory it may not
/// write to as "unable to open database file"; the operating system is asked
/// first, so the message names the cause.
fn open_store(dir: &Path, retention: Retention, feed: Feed) -> Result<Stores, ServerError> {
    let fail = |reason: String| ServerError::DataDir {
        dir: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(describe(&e)))?;
    if !dir.is_dir() {
        return Err(fail("not a directory".into()));
    }
    // SQLite creates its -wal and -shm files beside the database.
    let probe = dir.join(".statushub-write-check");
    std::fs::File::create(&probe).map_err(|e| fail(describe(&e)))?;
    let _ = std::fs::remove_file(&probe);
    Stores::sqlite(dir, retention, feed).map_err(|e| match e {
        StoreError::Unavailable(reason) => fail(reason),
        other => ServerError::Store(other),
    })
}

/// An I/O error in plain words, without Rust's "(os error N)".
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::AlreadyExists => "it exists and is not a directory".into(),
        io::ErrorKind::NotADirectory => "not a directory".into(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_lowercase(),
                None => text,
            }
        }
    }
}

/// Opens the Redis store (cluster mode); the data dir is not used then.
async fn open_redis(url: &str, config: &Config, feed: Feed) -> Result<RedisStore, ServerError> {
    let mut settings = RedisSettings::new(url);
    if let Some(prefix) = &config.redis_prefix {
        settings.prefix = prefix.clone();
    }
    let store = RedisStore::open(&settings, config.retention, feed)
        .await
        .map_err(|e| ServerError::Config {
            setting: match e {
                ConnectError::BadPrefix(_) => "STATUSHUB_REDIS_PREFIX (--redis-prefix)",
                _ => "STATUSHUB_REDIS_URL (--redis-url)",
            },
            reason: e.to_string(),
        })?;
    tracing::info!(
        "store: Redis (events, snapshots, idempotency records and monitors; the data dir is not used)"
    );
    store.check_durability().await;
    Ok(store)
}

/// Halts the heartbeat when dropped (see `Server::serve`).
struct HaltOnDrop(Arc<Heartbeat>);

impl Drop for HaltOnDrop {
    fn drop(&mut self) {
        self.0.halt();
    }
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
