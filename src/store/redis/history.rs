//! Monitor history in Redis: per monitor three sorted sets scored by time
//! (checks, hourly buckets, transitions) and per account a set of the
//! monitors that have history, all under the account's hash tag. One Lua
//! script (`scripts/record_check.lua`) keeps a check, folds what left the raw
//! window into buckets and drops what left the whole window, atomically, so
//! a monitor's members stay bounded.

use super::{
    RedisStore, conn,
    keys::{AccountKeys, Keys},
    scripts::SCRIPTS,
};
use crate::store::{
    AccountCounts, Bucket, CheckRecord, HistoryPolicy, HistoryRange, MAX_TRANSITIONS,
    MonitorHistory, StoreError, StoreFuture, Transition,
};

use serde::{Serialize, de::DeserializeOwned};
use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};

/// A member with a nonce beside the value, so two equal checks in one
/// millisecond stay two members. The nonce is fixed-width and counts up, so
/// members of equal time (ordered by Redis as strings) keep the order this
/// node recorded them in.
#[derive(Serialize)]
struct Unique<'a, T> {
    n: String,
    #[serde(flatten)]
    value: &'a T,
}

static NONCE: LazyLock<AtomicU64> = LazyLock::new(|| AtomicU64::new(rand::random::<u64>() >> 1));

fn member<T: Serialize>(value: &T) -> String {
    let n = format!("{:016x}", NONCE.fetch_add(1, Ordering::Relaxed));
    serde_json::to_string(&Unique { n, value }).unwrap_or_default()
}

async fn record(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    monitor_id: &str,
    check: &CheckRecord,
    policy: &HistoryPolicy,
) -> Result<(), StoreError> {
    let k = keys.account(account_id);
    let [checks, buckets, transitions] = k.history(monitor_id);
    let transition = Transition::of(check)
        .map(|t| member(&t))
        .unwrap_or_default();
    let _folded: u64 = conn::bounded(
        SCRIPTS
            .record_check
            .key(checks)
            .key(buckets)
            .key(transitions)
            .key(k.history_monitors())
            .arg(monitor_id)
            .arg(check.at_ms)
            .arg(member(check))
            .arg(transition)
            .arg(policy.fold_before(check.at_ms))
            .arg(policy.drop_before(check.at_ms))
            .arg(policy.bucket_ms())
            .arg(MAX_TRANSITIONS)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(())
}

/// Members as values; one that no longer parses is skipped with a warning.
fn decode<T: DeserializeOwned>(members: Vec<String>) -> Vec<T> {
    members
        .into_iter()
        .filter_map(|m| match serde_json::from_str(&m) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, "skipping a history member that is not what was stored");
                None
            }
        })
        .collect()
}

async fn range(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    monitor_id: &str,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<HistoryRange, StoreError> {
    let [checks, buckets, transitions] = keys.account(account_id).history(monitor_id);
    let limit = isize::try_from(limit).unwrap_or(isize::MAX);
    let (mut checks, buckets, transitions): (Vec<String>, Vec<String>, Vec<String>) =
        conn::bounded(
            redis::pipe()
                .atomic()
                .zrevrangebyscore_limit(&checks, to_ms, from_ms, 0, limit)
                .zrangebyscore(&buckets, from_ms, to_ms)
                .zrangebyscore(&transitions, from_ms, to_ms)
                .query_async(&mut conn),
        )
        .await?;
    checks.reverse();
    let mut checks: Vec<CheckRecord> = decode(checks);
    // Equal times come ordered by nonce; the stable sort keeps that order.
    checks.sort_by_key(|c| c.at_ms);
    let buckets: Vec<Bucket> = decode(buckets);
    let mut transitions: Vec<Transition> = decode(transitions);
    transitions.sort_by_key(|t| t.at_ms);
    Ok(HistoryRange {
        checks,
        buckets,
        transitions,
    })
}

async fn counts(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    since_ms: i64,
) -> Result<AccountCounts, StoreError> {
    let k: AccountKeys = keys.account(account_id);
    let monitors: Vec<String> = conn::bounded(
        redis::cmd("SMEMBERS")
            .arg(k.history_monitors())
            .query_async(&mut conn),
    )
    .await?;
    let mut pipe = redis::pipe();
    for monitor in &monitors {
        let [checks, _, transitions] = k.history(monitor);
        pipe.zcount(checks, since_ms, "+inf")
            .zcount(transitions, since_ms, "+inf");
    }
    let figures: Vec<u64> = conn::bounded(pipe.query_async(&mut conn)).await?;
    let mut counts = AccountCounts::default();
    for pair in figures.chunks(2) {
        if let [checks, transitions] = pair {
            counts.checks += checks;
            counts.transitions += transitions;
        }
    }
    Ok(counts)
}

async fn forget(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    monitor_id: &str,
) -> Result<bool, StoreError> {
    let k = keys.account(account_id);
    let (deleted, _): (u64, u64) = conn::bounded(
        redis::pipe()
            .atomic()
            .del(k.history(monitor_id).as_slice())
            .srem(k.history_monitors(), monitor_id)
            .query_async(&mut conn),
    )
    .await?;
    Ok(deleted > 0)
}

impl MonitorHistory for RedisStore {
    fn record<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        check: CheckRecord,
        policy: HistoryPolicy,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            record(
                self.conn.clone(),
                &self.keys,
                account_id,
                monitor_id,
                &check,
                &policy,
            )
            .await
        })
    }

    fn history<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> StoreFuture<'a, HistoryRange> {
        Box::pin(range(
            self.conn.clone(),
            &self.keys,
            account_id,
            monitor_id,
            from_ms,
            to_ms,
            limit,
        ))
    }

    fn account_counts<'a>(
        &'a self,
        account_id: &'a str,
        since_ms: i64,
    ) -> StoreFuture<'a, AccountCounts> {
        Box::pin(counts(self.conn.clone(), &self.keys, account_id, since_ms))
    }

    fn forget<'a>(&'a self, account_id: &'a str, monitor_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(forget(
            self.conn.clone(),
            &self.keys,
            account_id,
            monitor_id,
        ))
    }
}
