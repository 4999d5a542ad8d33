//! The presence role's conformance suite, written once and instantiated for
//! every implementation by [`conformance!`] (as `tests/store_conformance.rs`
//! does for the other roles): a node's publish replaces what it published
//! before, nodes do not overwrite each other, a withdrawal is immediate and
//! entries a node stops refreshing expire.

mod common;
mod redis_support;

use common::{WAIT, wait_for};
use statushub::store::{MemoryPresence, PresenceEntry, PresenceStore};
use std::{sync::Arc, time::Duration};

macro_rules! conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn a_publish_replaces_the_nodes_entries_and_nodes_are_apart() {
                let (store, _place) = $open;
                super::a_publish_replaces_the_nodes_entries_and_nodes_are_apart(store).await;
            }

            #[tokio::test]
            async fn a_withdrawal_is_immediate() {
                let (store, _place) = $open;
                super::a_withdrawal_is_immediate(store).await;
            }

            #[tokio::test]
            async fn entries_not_refreshed_expire() {
                let (store, _place) = $open;
                super::entries_not_refreshed_expire(store).await;
            }
        }
    };
}

conformance!(
    memory,
    (
        Arc::new(MemoryPresence::default()) as Arc<dyn PresenceStore>,
        ()
    )
);
conformance!(redis, {
    let prefix = redis_support::Prefix::fresh();
    let (store, _feed) = prefix.open(Default::default()).await;
    (store as Arc<dyn PresenceStore>, (prefix, _feed))
});

const LONG: Duration = Duration::from_secs(60);

fn entry(node: &str, account: &str, id: &str, seq: u64) -> PresenceEntry {
    PresenceEntry {
        connection_id: id.into(),
        account_id: account.into(),
        user: Some("u".into()),
        transport: "websocket".into(),
        node: node.into(),
        connected_since: "2026-01-01T00:00:00Z".into(),
        last_seq: seq,
        filtered: false,
    }
}

async fn ids(store: &dyn PresenceStore, account: &str) -> Vec<(String, String, u64)> {
    let list = store.list(account).await.expect("list");
    list.into_iter()
        .map(|e| {
            assert_eq!(e.account_id, account);
            (e.node, e.connection_id, e.last_seq)
        })
        .collect()
}

fn triples(list: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    list.iter()
        .map(|(n, c, s)| ((*n).to_owned(), (*c).to_owned(), *s))
        .collect()
}

async fn a_publish_replaces_the_nodes_entries_and_nodes_are_apart(store: Arc<dyn PresenceStore>) {
    let first = vec![
        entry("a", "acme", "c2", 1),
        entry("a", "acme", "c1", 1),
        entry("a", "other", "c3", 1),
    ];
    store.publish("a", first, LONG).await.expect("publish a");
    store
        .publish("b", vec![entry("b", "acme", "c1", 4)], LONG)
        .await
        .expect("publish b");
    assert_eq!(
        ids(store.as_ref(), "acme").await,
        triples(&[("a", "c1", 1), ("a", "c2", 1), ("b", "c1", 4)]),
        "by node, then connection id"
    );
    assert_eq!(
        ids(store.as_ref(), "other").await,
        triples(&[("a", "c3", 1)])
    );
    assert!(ids(store.as_ref(), "nobody").await.is_empty());

    // Node a now holds only c2 on acme, at a newer seq, and nothing on other.
    store
        .publish("a", vec![entry("a", "acme", "c2", 7)], LONG)
        .await
        .expect("publish a again");
    assert_eq!(
        ids(store.as_ref(), "acme").await,
        triples(&[("a", "c2", 7), ("b", "c1", 4)])
    );
    assert!(
        ids(store.as_ref(), "other").await.is_empty(),
        "a left other"
    );
    store.publish("a", vec![], LONG).await.expect("empty");
    assert_eq!(
        ids(store.as_ref(), "acme").await,
        triples(&[("b", "c1", 4)])
    );
}

async fn a_withdrawal_is_immediate(store: Arc<dyn PresenceStore>) {
    store
        .publish("a", vec![entry("a", "acme", "c1", 1)], LONG)
        .await
        .expect("publish a");
    store
        .publish("b", vec![entry("b", "acme", "c9", 1)], LONG)
        .await
        .expect("publish b");
    store.withdraw("a").await.expect("withdraw");
    assert_eq!(
        ids(store.as_ref(), "acme").await,
        triples(&[("b", "c9", 1)])
    );
    store
        .withdraw("a")
        .await
        .expect("withdrawing twice is harmless");
}

async fn entries_not_refreshed_expire(store: Arc<dyn PresenceStore>) {
    let short = Duration::from_millis(300);
    store
        .publish("dying", vec![entry("dying", "acme", "c1", 1)], short)
        .await
        .expect("publish dying");
    store
        .publish("alive", vec![entry("alive", "acme", "c2", 1)], LONG)
        .await
        .expect("publish alive");
    assert_eq!(
        ids(store.as_ref(), "acme").await.len(),
        2,
        "listed before expiry"
    );
    wait_for("the unrefreshed node's entries expire", WAIT, || async {
        ids(store.as_ref(), "acme").await == triples(&[("alive", "c2", 1)])
    })
    .await;
}
