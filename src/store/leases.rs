//! The lease role: a named resource held by one owner at a time, for a
//! while. Cluster mode uses it so that each heartbeat monitor is checked by
//! exactly one live node (`cluster::Leases`).
//!
//! A lease is granted for a TTL and must be renewed before it runs out; an
//! owner that dies simply stops renewing, and the lease is free again once
//! its TTL has passed. Nothing else ever takes a lease from its holder.
//!
//! [`MemoryLeases`] keeps leases in this process: right for a single node
//! (the SQLite store serves it), where the one node is the only owner and is
//! therefore always granted what it asks for.

use super::StoreFuture;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The answer to an acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseGrant {
    /// The lease was free (or expired) and is now the caller's, for the TTL.
    Granted,
    /// Someone holds it (the caller itself, if it already did: use
    /// [`LeaseStore::renew_lease`] to extend it).
    HeldBy(String),
}

/// Named leases with an expiry.
///
/// Ordering: each call is atomic with respect to every other call on the
/// same name, across all nodes sharing the store. Durability: none needed —
/// a lease lost with the store (a Redis restart) is free again, which only
/// hands the resource to whichever owner asks next.
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `name` for `owner` for `ttl` if nobody holds it.
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseGrant>;

    /// Extends `owner`'s lease to `ttl` from now. Returns false, changing
    /// nothing, when `owner` does not hold it (it expired, maybe taken).
    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Frees `owner`'s lease now. Returns false when `owner` did not hold it
    /// (another owner's lease is never touched).
    fn release_lease<'a>(&'a self, name: &'a str, owner: &'a str) -> StoreFuture<'a, bool>;

    /// Who holds `name` now, if anyone.
    fn lease_holder<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>>;
}

/// Leases kept in this process's memory (single node).
#[derive(Default)]
pub struct MemoryLeases {
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryLeases {
    /// Runs `f` on the table with `name`'s entry dropped if it expired
    /// (other expired entries wait until they are touched).
    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T,
    ) -> T {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases
            .get(name)
            .is_some_and(|(_, until)| *until <= Instant::now())
        {
            leases.remove(name);
        }
        f(&mut leases)
    }

    pub fn acquire(&self, name: &str, owner: &str, ttl: Duration) -> LeaseGrant {
        self.with(name, |leases| match leases.get(name) {
            Some((holder, _)) => LeaseGrant::HeldBy(holder.clone()),
            None => {
                leases.insert(name.to_owned(), (owner.to_owned(), Instant::now() + ttl));
                LeaseGrant::Granted
            }
        })
    }

    pub fn renew(&self, name: &str, owner: &str, ttl: Duration) -> bool {
        self.with(name, |leases| match leases.get_mut(name) {
            Some((holder, until)) if holder == owner => {
                *until = Instant::now() + ttl;
                true
            }
            _ => false,
        })
    }

    pub fn release(&self, name: &str, owner: &str) -> bool {
        self.with(name, |leases| {
            let mine = leases.get(name).is_some_and(|(holder, _)| holder == owner);
            if mine {
                leases.remove(name);
            }
            mine
        })
    }

    pub fn holder(&self, name: &str) -> Option<String> {
        self.with(name, |leases| {
            leases.get(name).map(|(holder, _)| holder.clone())
        })
    }
}

impl LeaseStore for MemoryLeases {
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseGrant> {
        Box::pin(async move { Ok(self.acquire(name, owner, ttl)) })
    }

    fn renew_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.renew(name, owner, ttl)) })
    }

    fn release_lease<'a>(&'a self, name: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.release(name, owner)) })
    }

    fn lease_holder<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move { Ok(self.holder(name)) })
    }
}
