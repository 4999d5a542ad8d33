//! Connecting to Redis (one server or a Redis Cluster), bounding every call
//! in time, and checking what Redis promises about durability.
//!
//! One multiplexed connection carries every command: redis-rs's
//! `ConnectionManager` for one server, its `ClusterConnection` (which routes
//! each command to the master of its key's slot and follows `MOVED`) for a
//! cluster. Either way concurrent commands share it without waiting for each
//! other's replies, and it reconnects by itself after Redis comes back. While
//! Redis is unreachable a call may wait on a reconnect; every store call is
//! therefore wrapped in [`CALL_TIMEOUT`], so it fails with
//! `StoreError::Unavailable` instead of hanging.
//!
//! The store only ever sends commands whose keys share one account's hash
//! tag in one pipeline or script, so the same commands run on both.

use crate::store::StoreError;
use redis::{
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::sync::OnceCell;

/// The longest any store call waits for Redis before answering
/// `Unavailable` (the contract asks for an answer within 2 s).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// One connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How a hub reaches Redis.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); for a
    /// Redis Cluster, one node's URL (detected at start) or several,
    /// comma-separated.
    pub url: String,
    /// Prefix of every key and channel (see `keys`).
    pub prefix: String,
}

impl RedisSettings {
    pub const DEFAULT_PREFIX: &'static str = "statushub";

    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.into(),
        }
    }
}

/// Why the store could not start; the server names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("not a usable Redis URL: {0}")]
    BadUrl(String),
    #[error("{0}")]
    BadPrefix(String),
    #[error("Redis is not reachable: {0}")]
    Unreachable(String),
}

/// The connection every store call goes through.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<Cluster>),
}

/// A cluster connection, made on first use (so a store can be built where
/// nothing can be awaited) and then shared.
pub struct Cluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl Cluster {
    /// The connection, connecting now if this is the first call.
    pub async fn get(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => {
                Box::pin(async move { c.get().await?.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => Box::pin(async move {
                c.get()
                    .await?
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

impl Conn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

/// The URLs of `url` (comma-separated for a cluster's seed nodes).
pub fn seeds(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            if u.contains("://") {
                u.to_owned()
            } else {
                format!("redis://{u}")
            }
        })
        .collect()
}

/// Opens the connection, failing within a few seconds when Redis cannot be
/// reached at start (a misconfigured URL should not look like a hung
/// process). Several URLs, or one node that says `cluster_enabled:1`, mean a
/// Redis Cluster.
pub async fn connect(url: &str) -> Result<Conn, ConnectError> {
    let seeds = seeds(url);
    let connecting = async {
        let is_cluster = match seeds.as_slice() {
            [] => return Err(ConnectError::BadUrl("no URL given".into())),
            [one] => cluster_enabled(one).await?,
            _ => true,
        };
        if is_cluster {
            let conn = cluster(&seeds)?;
            if let Conn::Cluster(c) = &conn {
                c.get()
                    .await
                    .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
            }
            Ok(conn)
        } else {
            ConnectionManager::new_with_config(client(&seeds[0])?, manager_config())
                .await
                .map(Conn::Single)
                .map_err(|e| ConnectError::Unreachable(e.to_string()))
        }
    };
    match tokio::time::timeout(3 * CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Unreachable("timed out".into())),
    }
}

/// The connection without connecting yet (the first call does). One URL is
/// taken as one server (detecting a cluster needs a connection); several are
/// a cluster's seeds.
pub fn connect_lazy(url: &str) -> Result<Conn, ConnectError> {
    let seeds = seeds(url);
    match seeds.as_slice() {
        [] => Err(ConnectError::BadUrl("no URL given".into())),
        [one] => ConnectionManager::new_lazy_with_config(client(one)?, manager_config())
            .map(Conn::Single)
            .map_err(|e| ConnectError::BadUrl(e.to_string())),
        _ => cluster(&seeds),
    }
}

/// Whether the server at `url` runs in cluster mode.
async fn cluster_enabled(url: &str) -> Result<bool, ConnectError> {
    let mut conn = client(url)?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

fn cluster(seeds: &[String]) -> Result<Conn, ConnectError> {
    let client = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(CALL_TIMEOUT)
        .retries(2)
        .min_retry_wait(50)
        .max_retry_wait(500)
        .build()
        .map_err(|e| ConnectError::BadUrl(e.to_string()))?;
    Ok(Conn::Cluster(Arc::new(Cluster {
        client,
        conn: OnceCell::new(),
    })))
}

pub fn client(url: &str) -> Result<redis::Client, ConnectError> {
    redis::Client::open(url).map_err(|e| ConnectError::BadUrl(e.to_string()))
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        // A short retry schedule: while Redis is down the calls time out on
        // their own; a failed reconnect is retried by the next call.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// Runs one Redis call within [`CALL_TIMEOUT`].
pub async fn bounded<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis did not answer within {} ms",
            CALL_TIMEOUT.as_millis()
        ))),
    }
}

/// Write commands of several accounts sent together, replies ignored: one
/// pipeline on one server; on a cluster one per account (a pipeline may only
/// hold keys of one slot), sent concurrently.
pub struct Pipes {
    per_account: bool,
    pipes: std::collections::BTreeMap<String, Pipeline>,
}

impl Pipes {
    pub fn new(conn: &Conn) -> Self {
        Pipes {
            per_account: conn.is_cluster(),
            pipes: Default::default(),
        }
    }

    /// The pipeline `account`'s commands go into.
    pub fn of(&mut self, account: &str) -> &mut Pipeline {
        let group = if self.per_account { account } else { "" };
        self.pipes
            .entry(group.to_owned())
            .or_insert_with(redis::pipe)
    }

    /// Sends every pipeline; the first failure, if any.
    pub async fn run(self, conn: &Conn) -> Result<(), StoreError> {
        let sent = futures::future::join_all(self.pipes.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { bounded(pipe.query_async::<()>(&mut conn)).await }
        }))
        .await;
        sent.into_iter().collect()
    }
}

/// Every key matching `pattern`, by `SCAN` (each step bounded in time) on
/// the server, or on every master of a cluster.
pub async fn scan(conn: &mut Conn, pattern: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    match conn {
        Conn::Single(c) => scan_node(c, None, pattern, &mut keys).await?,
        Conn::Cluster(c) => {
            let mut c = bounded(c.get()).await?;
            for (host, port) in masters(&mut c).await? {
                scan_node(&mut c, Some((host, port)), pattern, &mut keys).await?;
            }
        }
    }
    // SCAN may return a key more than once.
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// One node's keys matching `pattern` (`at` names a cluster node).
async fn scan_node(
    conn: &mut (impl ConnectionLike + ClusterRoute),
    at: Option<(String, u16)>,
    pattern: &str,
    keys: &mut Vec<String>,
) -> Result<(), StoreError> {
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let reply = bounded(conn.query_at(cmd, at.clone())).await?;
        let (next, mut found): (u64, Vec<String>) = redis::from_redis_value(reply)
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
        keys.append(&mut found);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The masters of a cluster, as `(host, port)`, from `CLUSTER SHARDS`'s
/// older sibling `CLUSTER NODES` (one line per node, flags in field 3).
async fn masters(conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>, StoreError> {
    let nodes: String = bounded(redis::cmd("CLUSTER").arg("NODES").query_async(conn)).await?;
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        // host:port@cport[,hostname]
        let addr = addr.split('@').next().unwrap_or_default();
        if let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            out.push((host.to_owned(), port));
        }
    }
    if out.is_empty() {
        return Err(malformed("CLUSTER NODES"));
    }
    Ok(out)
}

/// Sends one command to a named cluster node, or as usual.
trait ClusterRoute {
    fn query_at(&mut self, cmd: Cmd, at: Option<(String, u16)>) -> RedisFuture<'_, Value>;
}

impl ClusterRoute for ConnectionManager {
    fn query_at(&mut self, cmd: Cmd, _at: Option<(String, u16)>) -> RedisFuture<'_, Value> {
        Box::pin(async move { cmd.query_async(self).await })
    }
}

impl ClusterRoute for ClusterConnection {
    fn query_at(&mut self, cmd: Cmd, at: Option<(String, u16)>) -> RedisFuture<'_, Value> {
        Box::pin(async move {
            match at {
                Some((host, port)) => {
                    let routing =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    self.route_command(cmd, routing).await
                }
                None => cmd.query_async(self).await,
            }
        })
    }
}

pub fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// A reply that does not have the shape our scripts return.
pub fn malformed(what: &str) -> StoreError {
    StoreError::Unavailable(format!("redis: unexpected reply to {what}"))
}

/// A fresh epoch: names a new sequence of one account.
pub fn new_epoch() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// What Redis's persistence settings mean for acknowledged events.
#[derive(Debug, PartialEq, Eq)]
pub enum Durability {
    /// `appendonly yes` + `appendfsync always`: an acked event survives a
    /// Redis crash.
    Durable,
    /// Acked events can be lost on a Redis crash; the text says why.
    AtRisk(String),
    /// The settings could not be read (CONFIG disabled or renamed).
    Unknown(String),
}

/// Judges `appendonly` and `appendfsync` (`None` when not reported).
pub fn judge(appendonly: Option<&str>, appendfsync: Option<&str>) -> Durability {
    match (appendonly, appendfsync) {
        (Some("yes"), Some("always")) => Durability::Durable,
        (Some("yes"), Some("everysec")) => Durability::AtRisk(
            "appendonly yes, appendfsync everysec: up to about 1 s of acknowledged events can be lost on a Redis crash; set appendfsync always to lose none".into(),
        ),
        (Some("yes"), other) => Durability::AtRisk(format!(
            "appendonly yes, appendfsync {}: acknowledged events can be lost on a Redis crash; set appendfsync always to lose none",
            other.unwrap_or("(unknown)")
        )),
        (Some(other), _) => Durability::AtRisk(format!(
            "appendonly {other}: acknowledged events since the last RDB save (or all of them, without one) are lost on a Redis crash; set appendonly yes and appendfsync always"
        )),
        (None, _) => Durability::Unknown("CONFIG GET returned no appendonly setting".into()),
    }
}

/// Reads the persistence settings (tolerating a disabled `CONFIG`).
pub async fn durability(conn: &mut Conn) -> Durability {
    let read = bounded(
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async::<std::collections::HashMap<String, String>>(conn),
    )
    .await;
    match read {
        Ok(settings) => judge(
            settings.get("appendonly").map(String::as_str),
            settings.get("appendfsync").map(String::as_str),
        ),
        Err(e) => Durability::Unknown(e.to_string()),
    }
}

/// Logs, once, what a Redis crash would cost.
pub fn report_durability(durability: &Durability) {
    match durability {
        Durability::Durable => {
            tracing::info!("Redis persistence: appendonly yes, appendfsync always")
        }
        Durability::AtRisk(why) => tracing::warn!(
            settings = %why,
            "Redis may lose acknowledged events on a crash (see docs/CLUSTER.md)"
        ),
        Durability::Unknown(why) => tracing::warn!(
            reason = %why,
            "could not read Redis persistence settings (CONFIG GET appendonly/appendfsync); acknowledged events may not survive a Redis crash (see docs/CLUSTER.md)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fsync_always_keeps_every_acked_event() {
        assert_eq!(judge(Some("yes"), Some("always")), Durability::Durable);
        for (aof, fsync) in [("yes", "everysec"), ("yes", "no"), ("no", "always")] {
            let Durability::AtRisk(why) = judge(Some(aof), Some(fsync)) else {
                panic!("{aof}/{fsync} is at risk");
            };
            assert!(why.contains("appendonly"), "{why}");
        }
        assert!(matches!(judge(None, None), Durability::Unknown(_)));
    }
}
