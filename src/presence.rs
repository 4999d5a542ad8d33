//! Presence: which connections each account has on every node, and the seq
//! each is at, so a page can show "3 tabs, all at seq 42" and mark a tab
//! that lags.
//!
//! Every subscription made by a transport carries who holds it (the
//! connection id, the token's user, and the time its admission permit was
//! granted), so the hub's rooms are this node's presence. A background task
//! publishes them to the presence store ([`PresenceStore`]) every third of
//! `--presence-ttl`: in cluster mode that is Redis, where a dead node's
//! entries expire. A read merges this node's live entries (always current)
//! with what the other nodes last published.

use crate::{
    hub::Hub,
    store::{PresenceEntry, PresenceStore, StoreError, presence_sort},
};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

/// Longest pause between two refreshes, whatever the time to live.
const MAX_REFRESH: Duration = Duration::from_secs(10);

pub struct Presence {
    node: String,
    hub: Arc<Hub>,
    store: Arc<dyn PresenceStore>,
    ttl: Duration,
}

impl Presence {
    pub fn new(node: String, hub: Arc<Hub>, store: Arc<dyn PresenceStore>, ttl: Duration) -> Self {
        Presence {
            node,
            hub,
            store,
            ttl,
        }
    }

    /// This node's id, as presence entries name it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The account's live connections on every node, by node then connection id.
    pub async fn list(&self, account_id: &str) -> Result<Vec<PresenceEntry>, StoreError> {
        let mut entries = self.hub.presence(Some(account_id), &self.node);
        let others = self.store.list(account_id).await?;
        entries.extend(others.into_iter().filter(|e| e.node != self.node));
        presence_sort(&mut entries);
        Ok(entries)
    }

    /// Publishes this node's connections once.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let entries = self.hub.presence(None, &self.node);
        self.store.publish(&self.node, entries, self.ttl).await
    }

    /// Refreshes until `stop` fires, then withdraws this node's entries.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.ttl / 3).clamp(Duration::from_millis(10), MAX_REFRESH);
        let mut failing = false;
        loop {
            match self.refresh().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "presence: cannot publish this node's connections");
                }
                Err(_) => {}
            }
            if tokio::time::timeout(every, stop.cancelled()).await.is_ok() {
                break;
            }
        }
        let _ = self.store.withdraw(&self.node).await;
    }
}
