//! The publish rate limit: one token bucket per API key.
//!
//! A backend that runs away (a retry loop, a bug publishing per row) must not
//! fill the store and every browser's queue; a token bucket lets it burst and
//! then holds it to a sustained rate, and tells it exactly when to retry.
//! Buckets are per key, so one misbehaving service does not throttle others.

//!
//! The buckets live in the store's rate role ([`RateStore`]): in memory on a
//! single node, in Redis in cluster mode, so a key's limit holds across
//! every node rather than per node. A store that cannot be asked lets the
//! publish through: it then meets the same store and answers 503 there.

use crate::store::{MemoryRates, RateStore};
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};

pub struct PublishLimiter {
    /// Tokens per second; `None` turns the limit off.
    rate: Option<f64>,
    burst: f64,
    /// The bucket of each configured API key (indexed like them).
    buckets: Vec<String>,
    store: Arc<dyn RateStore>,
}

impl PublishLimiter {
    /// `rate` publishes per second (0 = unlimited), bursts of `burst`, for
    /// `keys` API keys, with buckets in this process.
    pub fn new(rate: u32, burst: u32, keys: usize) -> Self {
        let names = (0..keys).map(|i| format!("publish:key-{i}")).collect();
        Self::build(rate, burst, names, Arc::new(MemoryRates::default()))
    }

    /// The same limit with buckets in `store`, named by a digest of each
    /// API key (never the key itself), so nodes sharing the store share them.
    pub fn shared(rate: u32, burst: u32, api_keys: &[String], store: Arc<dyn RateStore>) -> Self {
        let names = api_keys
            .iter()
            .map(|key| {
                let digest = Sha256::digest(key.as_bytes());
                format!("publish:{}", hex::encode(&digest[..12]))
            })
            .collect();
        Self::build(rate, burst, names, store)
    }

    fn build(rate: u32, burst: u32, buckets: Vec<String>, store: Arc<dyn RateStore>) -> Self {
        PublishLimiter {
            rate: (rate > 0).then_some(f64::from(rate)),
            burst: f64::from(burst.max(1)),
            buckets,
            store,
        }
    }

    /// Takes one token for key `key`, or says how long until one is available.
    pub async fn check(&self, key: usize) -> Result<(), Duration> {
        let (Some(rate), Some(bucket)) = (self.rate, self.buckets.get(key)) else {
            return Ok(());
        };
        match self.store.take_token(bucket, rate, self.burst).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                tracing::debug!(error = %e, "publish rate limit not checked: the store did not answer");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bursts_then_refuses_per_key() {
        let limiter = PublishLimiter::new(1, 3, 2);
        for _ in 0..3 {
            assert!(limiter.check(0).await.is_ok());
        }
        let wait = limiter.check(0).await.expect_err("bucket is empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limiter.check(1).await.is_ok(),
            "another key has its own bucket"
        );
    }

    #[tokio::test]
    async fn zero_rate_is_unlimited() {
        let limiter = PublishLimiter::new(0, 1, 1);
        for _ in 0..10_000 {
            assert!(limiter.check(0).await.is_ok());
        }
    }

    #[tokio::test]
    async fn shared_buckets_are_named_by_key_digest_not_index_or_key() {
        let store = Arc::new(MemoryRates::default());
        let keys = ["alpha-key".to_owned(), "beta-key".to_owned()];
        let one = PublishLimiter::shared(1, 1, &keys, store.clone());
        // Another node configured with the keys in another order.
        let reversed = [keys[1].clone(), keys[0].clone()];
        let two = PublishLimiter::shared(1, 1, &reversed, store);
        assert!(one.check(0).await.is_ok());
        assert!(two.check(1).await.is_err(), "same key, same bucket");
        assert!(two.check(0).await.is_ok(), "the other key's bucket");
        assert!(one.buckets.iter().all(|b| !b.contains("key")));
    }
}
