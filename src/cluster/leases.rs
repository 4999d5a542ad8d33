//! This node's side of the leases: which ones it holds, asking the
//! [`LeaseStore`] to take, keep or give them back, and counting it.
//!
//! A holder renews its lease each time it does the leased work, so the lease
//! outlives it by at most one TTL when it dies; other nodes keep asking and
//! the first to ask after that gets it.

use crate::store::{LeaseGrant, LeaseStore, StoreError};
use dashmap::{DashMap, DashSet};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// What [`Leases::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// Newly this node's; `previous` is the holder it last saw, if any.
    Acquired { previous: Option<String> },
    /// Still this node's, for another TTL.
    Renewed,
    /// Another node holds it; `lost` when this node held it until now.
    Elsewhere { holder: String, lost: bool },
    /// The lease store could not be asked; nothing is known.
    Unknown(StoreError),
}

impl Claim {
    /// True when this node holds the lease now.
    pub fn held(&self) -> bool {
        matches!(self, Claim::Acquired { .. } | Claim::Renewed)
    }
}

/// Lease figures for `/v1/stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct LeaseReport {
    /// Leases this node holds now.
    pub held: u64,
    /// Leases taken since start (a takeover or a first check).
    pub acquired: u64,
    /// Leases found taken by another node while this node held them.
    pub lost: u64,
}

pub struct Leases {
    node: String,
    store: Arc<dyn LeaseStore>,
    shared: bool,
    held: DashSet<String>,
    /// The other holder last seen per lease, named when this node takes over.
    seen: DashMap<String, String>,
    acquired: AtomicU64,
    lost: AtomicU64,
}

impl Leases {
    /// Leases of node `node` in `store`; `shared` when other nodes use the
    /// same store (cluster mode).
    pub fn new(node: &str, store: Arc<dyn LeaseStore>, shared: bool) -> Leases {
        Leases {
            node: node.to_owned(),
            store,
            shared,
            held: DashSet::new(),
            seen: DashMap::new(),
            acquired: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    /// Leases of the only node there is (single-node mode).
    pub fn single(node: &str) -> Leases {
        Leases::new(node, Arc::new(crate::store::MemoryLeases::default()), false)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// True when other nodes compete for the same leases.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Whether this node believes it holds `name` (no store call).
    pub fn holds(&self, name: &str) -> bool {
        self.held.contains(name)
    }

    /// Renews `name` if this node holds it, else tries to take it; either
    /// way it is held for `ttl` from now when the answer says so.
    pub async fn claim(&self, name: &str, ttl: Duration) -> Claim {
        if self.held.contains(name) {
            match self.store.renew_lease(name, &self.node, ttl).await {
                Ok(true) => return Claim::Renewed,
                Ok(false) => {
                    self.held.remove(name);
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    return match self.acquire(name, ttl).await {
                        Claim::Elsewhere { holder, .. } => Claim::Elsewhere { holder, lost: true },
                        // It had expired and nobody took it: ours again.
                        other => other,
                    };
                }
                Err(e) => return Claim::Unknown(e),
            }
        }
        self.acquire(name, ttl).await
    }

    async fn acquire(&self, name: &str, ttl: Duration) -> Claim {
        match self.store.acquire_lease(name, &self.node, ttl).await {
            Ok(LeaseGrant::Granted) => {
                self.held.insert(name.to_owned());
                self.acquired.fetch_add(1, Ordering::Relaxed);
                Claim::Acquired {
                    previous: self.seen.remove(name).map(|(_, holder)| holder),
                }
            }
            Ok(LeaseGrant::HeldBy(holder)) if holder == self.node => {
                // Ours after all (an earlier answer was lost): keep it.
                self.held.insert(name.to_owned());
                match self.store.renew_lease(name, &self.node, ttl).await {
                    Ok(true) => Claim::Renewed,
                    Ok(false) => {
                        self.held.remove(name);
                        Claim::Unknown(StoreError::Unavailable("lease changed hands".into()))
                    }
                    Err(e) => Claim::Unknown(e),
                }
            }
            Ok(LeaseGrant::HeldBy(holder)) => {
                self.seen.insert(name.to_owned(), holder.clone());
                Claim::Elsewhere {
                    holder,
                    lost: false,
                }
            }
            Err(e) => Claim::Unknown(e),
        }
    }

    /// Extends `name` to `ttl` from now if this node holds it. False when
    /// it does not (any more): the lease was lost.
    pub async fn extend(&self, name: &str, ttl: Duration) -> bool {
        if !self.held.contains(name) {
            return false;
        }
        match self.store.renew_lease(name, &self.node, ttl).await {
            Ok(true) => true,
            Ok(false) => {
                self.held.remove(name);
                self.lost.fetch_add(1, Ordering::Relaxed);
                false
            }
            // Unknown: the next claim finds out.
            Err(_) => true,
        }
    }

    /// Gives `name` back (if held) and forgets it.
    pub async fn release(&self, name: &str) {
        self.seen.remove(name);
        if self.held.remove(name).is_some()
            && let Err(e) = self.store.release_lease(name, &self.node).await
        {
            tracing::debug!(lease = %name, error = %e, "could not release a lease; it expires by itself");
        }
    }

    /// Gives back every lease held (a graceful stop: others take over at
    /// once instead of after the TTL).
    pub async fn release_all(&self) {
        let names: Vec<String> = self.held.iter().map(|n| n.clone()).collect();
        futures::future::join_all(names.iter().map(|name| self.release(name))).await;
    }

    pub fn report(&self) -> LeaseReport {
        LeaseReport {
            held: self.held.len() as u64,
            acquired: self.acquired.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryLeases;

    #[tokio::test]
    async fn one_node_holds_and_the_other_takes_over_once_it_expires() {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeases::default());
        let a = Leases::new("node-a", store.clone(), true);
        let b = Leases::new("node-b", store, true);
        let long = Duration::from_secs(30);
        assert!(matches!(
            a.claim("m", long).await,
            Claim::Acquired { previous: None }
        ));
        assert!(matches!(a.claim("m", long).await, Claim::Renewed));
        let Claim::Elsewhere { holder, lost } = b.claim("m", long).await else {
            panic!("a holds it");
        };
        assert_eq!((holder.as_str(), lost), ("node-a", false));
        // a stops renewing (dies): once its lease runs out b takes over,
        // naming the previous owner it saw.
        assert!(a.extend("m", Duration::from_millis(1)).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Claim::Acquired { previous } = b.claim("m", long).await else {
            panic!("b takes over");
        };
        assert_eq!(previous.as_deref(), Some("node-a"));
        // a comes back: it finds its lease lost, held by b.
        let Claim::Elsewhere { holder, lost } = a.claim("m", long).await else {
            panic!("b holds it now");
        };
        assert_eq!((holder.as_str(), lost), ("node-b", true));
        assert!(!a.holds("m") && b.holds("m"));
        let (ra, rb) = (a.report(), b.report());
        assert_eq!((ra.held, ra.acquired, ra.lost), (0, 1, 1));
        assert_eq!((rb.held, rb.acquired, rb.lost), (1, 1, 0));
        b.release_all().await;
        assert_eq!(b.report().held, 0);
        assert!(matches!(a.claim("m", long).await, Claim::Acquired { .. }));
    }
}
