//! Connecting to Redis, bounding every call in time, and checking what
//! Redis promises about durability.
//!
//! One multiplexed connection (redis-rs's `ConnectionManager`) carries every
//! command: concurrent commands share it without waiting for each other's
//! replies, and it reconnects by itself after Redis comes back. While Redis is
//! unreachable the manager may be waiting on a reconnect; every store call is
//! therefore wrapped in [`CALL_TIMEOUT`], so it fails with
//! `StoreError::Unavailable` instead of hanging.

use crate::store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::{future::Future, time::Duration};

/// The longest any store call waits for Redis before answering
/// `Unavailable` (the contract asks for an answer within 2 s).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// One connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How a hub reaches Redis.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
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

/// Opens the managed connection, failing within a few seconds when Redis
/// cannot be reached at start (a misconfigured URL should not look like a
/// hung process).
pub async fn connect(url: &str) -> Result<ConnectionManager, ConnectError> {
    let connecting = ConnectionManager::new_with_config(client(url)?, manager_config());
    match tokio::time::timeout(3 * CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(e)) => Err(ConnectError::Unreachable(e.to_string())),
        Err(_) => Err(ConnectError::Unreachable("timed out".into())),
    }
}

/// The managed connection without connecting yet (the first call does).
pub fn connect_lazy(url: &str) -> Result<ConnectionManager, ConnectError> {
    ConnectionManager::new_lazy_with_config(client(url)?, manager_config())
        .map_err(|e| ConnectError::BadUrl(e.to_string()))
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

/// Every key matching `pattern`, by `SCAN` (each step bounded in time).
pub async fn scan(conn: &mut ConnectionManager, pattern: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, mut found): (u64, Vec<String>) = bounded(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(conn),
        )
        .await?;
        keys.append(&mut found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key more than once.
    keys.sort();
    keys.dedup();
    Ok(keys)
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
pub async fn durability(conn: &mut ConnectionManager) -> Durability {
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
