//! Presence in Redis: per account, one string key per node holding that
//! node's entries for the account as a JSON list, expiring after the node's
//! time to live, and a set naming the nodes that published for the account
//! (its expiry refreshed by every publish). A dead node's keys expire by
//! themselves; a reader drops the names whose key is gone from the set.
//! Every key of an account shares its hash tag, so each read is one slot.
//!
//! A node remembers which accounts it published last time, so its next
//! publish deletes the keys of accounts it no longer has connections to.

use super::{conn, keys::Keys};
use crate::store::{
    StoreError,
    presence::{PresenceEntry, sort_entries},
};

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

/// The accounts each node of this process published last (by node id).
#[derive(Default)]
pub struct Published(Mutex<HashMap<String, HashSet<String>>>);

impl Published {
    fn swap(&self, node: &str, now: HashSet<String>) -> HashSet<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_empty() {
            map.remove(node).unwrap_or_default()
        } else {
            map.insert(node.to_owned(), now).unwrap_or_default()
        }
    }
}

pub async fn publish(
    conn: conn::Conn,
    keys: &Keys,
    published: &Published,
    node: &str,
    entries: Vec<PresenceEntry>,
    ttl: Duration,
) -> Result<(), StoreError> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut by_account: BTreeMap<String, Vec<PresenceEntry>> = BTreeMap::new();
    for entry in entries {
        by_account
            .entry(entry.account_id.clone())
            .or_default()
            .push(entry);
    }
    let mut pipes = conn::Pipes::new(&conn);
    for (account, list) in &by_account {
        let k = keys.account(account);
        let json = serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
        let pipe = pipes.of(account);
        pipe.cmd("SET")
            .arg(k.presence(node))
            .arg(json)
            .arg("PX")
            .arg(ms)
            .ignore();
        pipe.sadd(k.presence_nodes(), node).ignore();
        pipe.pexpire(k.presence_nodes(), ms as i64).ignore();
    }
    let now: HashSet<String> = by_account.into_keys().collect();
    let before = published.swap(node, now.clone());
    for account in before.difference(&now) {
        forget(pipes.of(account), keys, account, node);
    }
    if let Err(e) = pipes.run(&conn).await {
        // Not all written: the next publish deletes what this one named.
        published.swap(node, before.union(&now).cloned().collect());
        return Err(e);
    }
    Ok(())
}

fn forget(pipe: &mut redis::Pipeline, keys: &Keys, account: &str, node: &str) {
    let k = keys.account(account);
    pipe.del(k.presence(node)).ignore();
    pipe.srem(k.presence_nodes(), node).ignore();
}

pub async fn list(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
) -> Result<Vec<PresenceEntry>, StoreError> {
    let k = keys.account(account_id);
    let nodes: Vec<String> = conn::bounded(
        redis::cmd("SMEMBERS")
            .arg(k.presence_nodes())
            .query_async(&mut conn),
    )
    .await?;
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let node_keys: Vec<String> = nodes.iter().map(|n| k.presence(n)).collect();
    let lists: Vec<Option<String>> =
        conn::bounded(redis::cmd("MGET").arg(&node_keys).query_async(&mut conn)).await?;
    let mut found = Vec::new();
    let mut expired = Vec::new();
    for (node, list) in nodes.iter().zip(lists) {
        match list.and_then(|l| serde_json::from_str::<Vec<PresenceEntry>>(&l).ok()) {
            Some(entries) => found.extend(entries),
            None => expired.push(node),
        }
    }
    if !expired.is_empty() {
        // Tidying only: a failure leaves names a later read drops again.
        let mut srem = redis::cmd("SREM");
        srem.arg(k.presence_nodes()).arg(&expired);
        let _ = conn::bounded(srem.query_async::<()>(&mut conn)).await;
    }
    sort_entries(&mut found);
    Ok(found)
}

pub async fn withdraw(
    conn: conn::Conn,
    keys: &Keys,
    published: &Published,
    node: &str,
) -> Result<(), StoreError> {
    let before = published.swap(node, HashSet::new());
    if before.is_empty() {
        return Ok(());
    }
    let mut pipes = conn::Pipes::new(&conn);
    for account in &before {
        forget(pipes.of(account), keys, account, node);
    }
    pipes.run(&conn).await
}
