//! The rate role's conformance suite ([`RateStore`]), written once and run
//! against every store that serves it, in the pattern of
//! `tests/store_conformance.rs`: one `conformance!` line per store.

mod common;
mod redis_support;

use redis_support::Place;

use common::{WAIT, wait_for};
use statushub::{
    config::Retention,
    store::{RateStore, SqliteStore},
};
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;

/// `conformance!(name, |place| -> Arc<dyn RateStore>)`.
macro_rules! conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            fn open(place: &Place) -> Arc<dyn RateStore> {
                let open: fn(&Place) -> Arc<dyn RateStore> = $open;
                open(place)
            }

            #[tokio::test]
            async fn a_bucket_bursts_then_refuses_saying_how_long() {
                let place = Place::new();
                super::bursts_then_refuses(open(&place)).await;
            }

            #[tokio::test]
            async fn an_empty_bucket_refills_at_the_rate() {
                let place = Place::new();
                super::refills(open(&place)).await;
            }
        }
    };
}

conformance!(sqlite, |place| {
    let (feed, _) = mpsc::channel(16);
    Arc::new(SqliteStore::open(place.dir(), Retention::default(), feed).expect("open sqlite"))
});
conformance!(redis, |place| {
    let (feed, _) = mpsc::channel(16);
    Arc::new(place.redis().store(feed, Retention::default()))
});

async fn bursts_then_refuses(store: Arc<dyn RateStore>) {
    // 1 token a second, bursts of 3: three go, the fourth waits up to 1 s.
    for n in 0..3 {
        assert_eq!(
            store.take_token("k", 1.0, 3.0).await.expect("take"),
            None,
            "token {n} of the burst"
        );
    }
    let wait = store
        .take_token("k", 1.0, 3.0)
        .await
        .expect("take")
        .expect("the bucket is empty");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    assert_eq!(
        store.take_token("other", 1.0, 3.0).await.expect("take"),
        None,
        "another bucket is full"
    );
}

async fn refills(store: Arc<dyn RateStore>) {
    // 20 tokens a second, bursts of 1: empty after one, a token again soon.
    assert_eq!(store.take_token("k", 20.0, 1.0).await.expect("take"), None);
    let wait = store
        .take_token("k", 20.0, 1.0)
        .await
        .expect("take")
        .expect("empty");
    assert!(wait <= Duration::from_millis(50), "{wait:?}");
    wait_for("a refilled token", WAIT, || async {
        store
            .take_token("k", 20.0, 1.0)
            .await
            .expect("take")
            .is_none()
    })
    .await;
}
