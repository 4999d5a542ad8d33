//! The presence role: which client connections each node holds, per
//! account, so any node can answer "who is connected to this account, and
//! at which seq" for the whole hub.
//!
//! Each node publishes its own connections as one batch that lives for a
//! time to live and is replaced by the node's next publish; a node that
//! dies stops publishing and its entries expire with it. Nothing here is
//! durable: presence is live state, rebuilt by every node's next publish.
//! [`MemoryPresence`] serves a single node (the SQLite mode), `RedisStore`
//! the cluster (`store::redis::presence`).

use super::StoreFuture;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};
use tokio::time::Instant;

/// One live subscription of a connection to an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    /// The connection's id: the Socket.IO socket id, `ws-N` or `sse-N`
    /// (unique per node; `node` + `connectionId` is unique in the hub).
    pub connection_id: String,
    pub account_id: String,
    /// The token's `sub`; `null` for a stream opened with an API key.
    pub user: Option<String>,
    /// `socketio`, `websocket` or `sse`.
    pub transport: String,
    /// The node holding the connection.
    pub node: String,
    /// When the connection was admitted (RFC 3339).
    pub connected_since: String,
    /// The account's seq the connection is up to date with: the last event
    /// delivered to it (or the snapshot's seq), counting events its filter
    /// skipped as seen.
    pub last_seq: u64,
    /// Whether the subscription carries a filter.
    pub filtered: bool,
}

/// Where nodes publish their connections.
///
/// Ordering: a node's publish replaces everything it published before, at
/// once for each account. Durability: none; entries live `ttl` after the
/// publish that wrote them, so a node publishes again well within its `ttl`
/// (the hub: every third of it).
pub trait PresenceStore: Send + Sync + 'static {
    /// Replaces every entry `node` published before with `entries`, each
    /// live for `ttl` unless published again.
    fn publish<'a>(
        &'a self,
        node: &'a str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// The account's live entries on every node, by node then connection id.
    fn list<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Vec<PresenceEntry>>;

    /// Removes `node`'s entries now (a node shutting down cleanly).
    fn withdraw<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()>;
}

/// Sorts entries the way [`PresenceStore::list`] answers.
pub fn sort_entries(entries: &mut [PresenceEntry]) {
    entries.sort_by(|a, b| (&a.node, &a.connection_id).cmp(&(&b.node, &b.connection_id)));
}

/// Presence kept in this process: the single node's own.
#[derive(Default)]
pub struct MemoryPresence {
    nodes: Mutex<HashMap<String, (Instant, Vec<PresenceEntry>)>>,
}

impl MemoryPresence {
    fn nodes(&self) -> MutexGuard<'_, HashMap<String, (Instant, Vec<PresenceEntry>)>> {
        // Every update is one insert or remove; a panic elsewhere leaves it whole.
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PresenceStore for MemoryPresence {
    fn publish<'a>(
        &'a self,
        node: &'a str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        let until = Instant::now() + ttl;
        self.nodes().insert(node.to_owned(), (until, entries));
        Box::pin(async { Ok(()) })
    }

    fn list<'a>(&'a self, account_id: &'a str) -> StoreFuture<'a, Vec<PresenceEntry>> {
        let now = Instant::now();
        let mut nodes = self.nodes();
        nodes.retain(|_, (until, _)| *until > now);
        let mut found: Vec<PresenceEntry> = nodes
            .values()
            .flat_map(|(_, entries)| entries.iter())
            .filter(|e| e.account_id == account_id)
            .cloned()
            .collect();
        drop(nodes);
        sort_entries(&mut found);
        Box::pin(async move { Ok(found) })
    }

    fn withdraw<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()> {
        self.nodes().remove(node);
        Box::pin(async { Ok(()) })
    }
}
