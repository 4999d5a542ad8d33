//! Node-level duties of cluster mode: who this node is, which leases it
//! holds, and how its store answers.
//!
//! Every process gets a random node id at start (shown in `/v1/stats`,
//! `/metrics` and lease logs); nothing is configured per node, so N nodes
//! started with the same settings stay interchangeable. The store roles
//! themselves live in `store`; this module only uses them:
//!
//! - `leases`: [`Leases`], this node's view of the [`LeaseStore`](crate::store::LeaseStore)
//!   (the heartbeat checks a monitor only while it holds that monitor's lease);
//! - the store's round trip: in Redis mode a background task times a `PING`
//!   every [`PING_EVERY`] and logs when Redis is lost and when it is back.

mod leases;

pub use leases::{Claim, LeaseReport, Leases};

use crate::{
    metrics::{Exposition, Families},
    store::{EventLog, LeaseStore},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

/// How often the store's round trip is measured (Redis mode).
pub const PING_EVERY: Duration = Duration::from_secs(2);

/// Where this node keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Redis,
}

impl StoreKind {
    fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Redis => "redis",
        }
    }
}

/// A fresh node id: `node-` and 12 hex digits, random per process start.
pub fn new_node_id() -> String {
    format!("node-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// The last measured round trip to Redis.
#[derive(Default)]
struct RoundTrip {
    /// Microseconds of the last answered `PING`.
    last_us: AtomicU64,
    answered: AtomicBool,
    /// True once any PING was made.
    measured: AtomicBool,
}

/// This node: its id, store kind, leases and store round trip.
pub struct Node {
    id: String,
    store: StoreKind,
    pub leases: Arc<Leases>,
    round_trip: Option<Arc<RoundTrip>>,
    stop: CancellationToken,
}

impl Node {
    /// A node with a fresh id. In Redis mode (`StoreKind::Redis`) it shares
    /// `leases` with the other nodes and times `log.ping()` in the
    /// background until [`Node::stop`] (or drop).
    pub fn start(store: StoreKind, log: Arc<dyn EventLog>, leases: Arc<dyn LeaseStore>) -> Node {
        let id = new_node_id();
        let shared = store == StoreKind::Redis;
        let stop = CancellationToken::new();
        let round_trip = shared.then(|| {
            let round_trip = Arc::new(RoundTrip::default());
            tokio::spawn(measure(log, round_trip.clone(), stop.clone()));
            round_trip
        });
        tracing::info!(node = %id, store = store.as_str(), "node started");
        Node {
            leases: Arc::new(Leases::new(&id, leases, shared)),
            id,
            store,
            round_trip,
            stop,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops the background measurement (before the store closes).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn report(&self) -> NodeReport {
        let (latency, reachable) = match &self.round_trip {
            Some(rt) if rt.measured.load(Ordering::Relaxed) => {
                let answered = rt.answered.load(Ordering::Relaxed);
                let ms = rt.last_us.load(Ordering::Relaxed) as f64 / 1000.0;
                (answered.then_some(ms), Some(answered))
            }
            _ => (None, None),
        };
        NodeReport {
            id: self.id.clone(),
            store: self.store,
            redis_round_trip_ms: latency,
            redis_reachable: reachable,
            monitor_leases: self.leases.report(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Times a PING every [`PING_EVERY`]; logs when the store stops answering
/// and when it answers again.
async fn measure(log: Arc<dyn EventLog>, round_trip: Arc<RoundTrip>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let answer = tokio::select! {
            _ = stop.cancelled() => return,
            answer = log.ping() => answer,
        };
        let was = round_trip.answered.load(Ordering::Relaxed);
        let first = !round_trip.measured.swap(true, Ordering::Relaxed);
        match answer {
            Ok(()) => {
                let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
                round_trip.last_us.store(us, Ordering::Relaxed);
                round_trip.answered.store(true, Ordering::Relaxed);
                if !was && !first {
                    tracing::info!(round_trip_ms = us as f64 / 1000.0, "Redis reachable again");
                }
            }
            Err(e) => {
                round_trip.answered.store(false, Ordering::Relaxed);
                if was || first {
                    tracing::warn!(error = %e, "Redis lost: publishes answer 503 and monitors are not checked until it is back");
                }
            }
        }
    }
}

/// This node's figures (`node` in `/v1/stats`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// Random per process start.
    pub id: String,
    /// `sqlite` (single node) or `redis` (cluster mode).
    pub store: StoreKind,
    /// The last `PING` round trip to Redis in milliseconds; null when not
    /// in Redis mode, not measured yet, or Redis did not answer.
    pub redis_round_trip_ms: Option<f64>,
    /// Whether Redis answered the last `PING` (null when not in Redis mode).
    pub redis_reachable: Option<bool>,
    /// Heartbeat monitor leases.
    pub monitor_leases: LeaseReport,
}

impl Families for NodeReport {
    fn families(&self, out: &mut Exposition) {
        out.family(
            "statushub_node_info",
            "gauge",
            "This node: its random id and its store (sqlite or redis).",
            [(
                format!("node=\"{}\",store=\"{}\"", self.id, self.store.as_str()),
                "1".into(),
            )],
        );
        if let Some(reachable) = self.redis_reachable {
            out.family(
                "statushub_redis_up",
                "gauge",
                "1 when Redis answered the last PING.",
                [(String::new(), u8::from(reachable).to_string())],
            );
        }
        if let Some(ms) = self.redis_round_trip_ms {
            out.family(
                "statushub_redis_round_trip_seconds",
                "gauge",
                "The last PING round trip to Redis.",
                [(String::new(), (ms / 1000.0).to_string())],
            );
        }
        let leases = self.monitor_leases;
        out.family(
            "statushub_monitor_leases_held",
            "gauge",
            "Heartbeat monitor leases this node holds (the monitors it checks).",
            [(String::new(), leases.held.to_string())],
        );
        out.family(
            "statushub_monitor_leases_acquired_total",
            "counter",
            "Monitor leases this node took (first checks and takeovers).",
            [(String::new(), leases.acquired.to_string())],
        );
        out.family(
            "statushub_monitor_leases_lost_total",
            "counter",
            "Monitor leases this node found taken by another node.",
            [(String::new(), leases.lost.to_string())],
        );
    }
}
