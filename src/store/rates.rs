//! The rate role: token buckets by name, so a limit (the per-API-key
//! publish rate) holds for every node that shares the store.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second;
//! taking one either succeeds or says how long until one is there. Buckets
//! are state that may be lost: a bucket that disappears (a Redis restart, an
//! expiry once full again) starts full, which only forgives a burst.
//!
//! [`MemoryRates`] keeps buckets in this process (one node: the SQLite
//! store serves it); the Redis store keeps each in a hash updated by one
//! script on Redis's clock, so nodes' clocks do not matter.

use super::StoreFuture;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Token buckets.
///
/// Ordering: each take is atomic per bucket across every node sharing the
/// store. Durability: none (see the module doc).
pub trait RateStore: Send + Sync + 'static {
    /// Takes one token from bucket `name` (`rate` tokens per second, at most
    /// `burst`, full when new). `None` when taken; `Some(wait)` when empty,
    /// with the time until a token is available.
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        rate: f64,
        burst: f64,
    ) -> StoreFuture<'a, Option<Duration>>;
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Token buckets in this process's memory (single node).
#[derive(Default)]
pub struct MemoryRates {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MemoryRates {
    pub fn take(&self, name: &str, rate: f64, burst: f64) -> Option<Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if !buckets.contains_key(name) {
            let full = Bucket {
                tokens: burst,
                refilled: now,
            };
            buckets.insert(name.to_owned(), full);
        }
        // Present: inserted just above if it was not.
        let bucket = buckets.get_mut(name)?;
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

impl RateStore for MemoryRates {
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        rate: f64,
        burst: f64,
    ) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move { Ok(self.take(name, rate, burst)) })
    }
}
