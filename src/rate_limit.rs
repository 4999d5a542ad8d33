//! The publish rate limit: one token bucket per API key.
//!
//! A backend that runs away (a retry loop, a bug publishing per row) must not
//! fill the store and every browser's queue; a token bucket lets it burst and
//! then holds it to a sustained rate, and tells it exactly when to retry.
//! Buckets are per key, so one misbehaving service does not throttle others.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

pub struct PublishLimiter {
    /// Tokens per second; `None` turns the limit off.
    rate: Option<f64>,
    burst: f64,
    /// Indexed like the configured API keys.
    buckets: Vec<Mutex<Bucket>>,
}

impl PublishLimiter {
    /// `rate` publishes per second (0 = unlimited), bursts of `burst`, for `keys` API keys.
    pub fn new(rate: u32, burst: u32, keys: usize) -> Self {
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        PublishLimiter {
            rate: (rate > 0).then_some(f64::from(rate)),
            burst,
            buckets: (0..keys)
                .map(|_| {
                    Mutex::new(Bucket {
                        tokens: burst,
                        refilled: now,
                    })
                })
                .collect(),
        }
    }

    /// Takes one token for key `key`, or says how long until one is available.
    pub fn check(&self, key: usize) -> Result<(), Duration> {
        let (Some(rate), Some(bucket)) = (self.rate, self.buckets.get(key)) else {
            return Ok(());
        };
        let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_per_key() {
        let limiter = PublishLimiter::new(1, 3, 2);
        for _ in 0..3 {
            assert!(limiter.check(0).is_ok());
        }
        let wait = limiter.check(0).expect_err("bucket is empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check(1).is_ok(), "another key has its own bucket");
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let limiter = PublishLimiter::new(0, 1, 1);
        assert!((0..10_000).all(|_| limiter.check(0).is_ok()));
    }
}
