//! The lease role's conformance suite ([`LeaseStore`]), written once and run
//! against every store that serves it, in the pattern of
//! `tests/store_conformance.rs` (a file of its own so roles added
//! concurrently do not collide): one `conformance!` line per store.

mod common;
mod redis_support;

use redis_support::Place;

use common::{WAIT, wait_for};
use statushub::{
    config::Retention,
    store::{LeaseGrant, LeaseStore, SqliteStore},
};
use std::{sync::Arc, time::Duration};
use tokio::sync::mpsc;

/// `conformance!(name, |place| -> Arc<impl LeaseStore>)`.
macro_rules! conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            fn open(place: &Place) -> Arc<dyn LeaseStore> {
                let open: fn(&Place) -> Arc<dyn LeaseStore> = $open;
                open(place)
            }

            #[tokio::test]
            async fn one_owner_at_a_time() {
                let place = Place::new();
                super::one_owner_at_a_time(open(&place)).await;
            }

            #[tokio::test]
            async fn a_lease_not_renewed_expires_and_its_old_owner_cannot_touch_the_new_one() {
                let place = Place::new();
                super::a_lease_not_renewed_expires(open(&place)).await;
            }

            #[tokio::test]
            async fn leases_are_independent_by_name() {
                let place = Place::new();
                super::leases_are_independent_by_name(open(&place)).await;
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

const LONG: Duration = Duration::from_secs(30);

async fn one_owner_at_a_time(store: Arc<dyn LeaseStore>) {
    let name = "monitor:acme/web";
    assert_eq!(store.lease_holder(name).await.expect("holder"), None);
    assert_eq!(
        store.acquire_lease(name, "a", LONG).await.expect("acquire"),
        LeaseGrant::Granted
    );
    assert_eq!(
        store.lease_holder(name).await.expect("holder").as_deref(),
        Some("a")
    );
    for owner in ["b", "a"] {
        assert_eq!(
            store
                .acquire_lease(name, owner, LONG)
                .await
                .expect("acquire"),
            LeaseGrant::HeldBy("a".into()),
            "{owner} asks while a holds it"
        );
    }
    assert!(
        !store.renew_lease(name, "b", LONG).await.expect("renew"),
        "only the holder renews"
    );
    assert!(
        !store.release_lease(name, "b").await.expect("release"),
        "only the holder releases"
    );
    assert_eq!(
        store.lease_holder(name).await.expect("holder").as_deref(),
        Some("a")
    );
    assert!(store.renew_lease(name, "a", LONG).await.expect("renew"));
    assert!(store.release_lease(name, "a").await.expect("release"));
    assert_eq!(store.lease_holder(name).await.expect("holder"), None);
    assert!(
        !store.release_lease(name, "a").await.expect("release"),
        "released once"
    );
    assert_eq!(
        store.acquire_lease(name, "b", LONG).await.expect("acquire"),
        LeaseGrant::Granted,
        "free again after the release"
    );
}

async fn a_lease_not_renewed_expires(store: Arc<dyn LeaseStore>) {
    let name = "monitor:acme/db";
    assert_eq!(
        store.acquire_lease(name, "a", LONG).await.expect("acquire"),
        LeaseGrant::Granted
    );
    assert_eq!(
        store.acquire_lease(name, "b", LONG).await.expect("acquire"),
        LeaseGrant::HeldBy("a".into())
    );
    // a renews for a moment only, then "dies": b gets it once that passes.
    assert!(
        store
            .renew_lease(name, "a", Duration::from_millis(100))
            .await
            .expect("renew")
    );
    wait_for("the unrenewed lease to expire", WAIT, || async {
        store.acquire_lease(name, "b", LONG).await.expect("acquire") == LeaseGrant::Granted
    })
    .await;
    assert!(
        !store.renew_lease(name, "a", LONG).await.expect("renew"),
        "the old owner cannot renew the new owner's lease"
    );
    assert!(
        !store.release_lease(name, "a").await.expect("release"),
        "nor release it"
    );
    assert_eq!(
        store.lease_holder(name).await.expect("holder").as_deref(),
        Some("b")
    );
}

async fn leases_are_independent_by_name(store: Arc<dyn LeaseStore>) {
    assert_eq!(
        store.acquire_lease("x", "a", LONG).await.expect("acquire"),
        LeaseGrant::Granted
    );
    assert_eq!(
        store.acquire_lease("y", "b", LONG).await.expect("acquire"),
        LeaseGrant::Granted
    );
    assert!(store.release_lease("x", "a").await.expect("release"));
    assert_eq!(
        store.lease_holder("y").await.expect("holder").as_deref(),
        Some("b")
    );
}
