//! The monitor history role's conformance suite, written once and run for
//! every implementation by [`history_conformance!`] (kept beside
//! `store_conformance.rs`, in the same pattern, so the two suites grow
//! without touching each other).
//!
//! Time is injected: every check carries its own time and the store never
//! reads a clock, so forty days of checks are replayed in seconds and the
//! storage a monitor holds afterwards is measured in the backend itself
//! (rows in the SQLite file, members of the Redis keys).

use statushub::{
    config::Retention,
    store::{
        AccountCounts, CheckRecord, EventLog, HistoryPolicy, MonitorHistory, RedisStore,
        SqliteStore, Transition,
    },
};
use std::sync::Arc;
use tokio::sync::mpsc;

mod redis_support;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A Monday at 00:00 UTC, so bucket boundaries are easy to read.
const T0: i64 = 1_764_547_200_000;

/// Where one test's data lives and how its storage is measured.
trait Backend {
    fn store(&self) -> Arc<dyn MonitorHistory>;
    /// Closes the store and opens it again on the same data.
    async fn reopen(&mut self);
    /// (checks, buckets, transitions) the backend holds for the monitor.
    fn footprint(&self, account: &str, monitor: &str) -> (u64, u64, u64);
}

struct Sqlite {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Nothing is appended: the feed is never read.
        let (tx, _) = mpsc::channel(16);
        let store = Arc::new(SqliteStore::open(dir.path(), Retention::default(), tx).unwrap());
        Sqlite { dir, store }
    }
}

impl Backend for Sqlite {
    fn store(&self) -> Arc<dyn MonitorHistory> {
        self.store.clone()
    }

    async fn reopen(&mut self) {
        EventLog::close(self.store.as_ref()).await.unwrap();
        let (tx, _) = mpsc::channel(16);
        self.store =
            Arc::new(SqliteStore::open(self.dir.path(), Retention::default(), tx).unwrap());
    }

    fn footprint(&self, account: &str, monitor: &str) -> (u64, u64, u64) {
        let conn = rusqlite::Connection::open(self.dir.path().join("statushub.db")).unwrap();
        let count = |table: &str| -> u64 {
            conn.query_row(
                &format!("SELECT count(*) FROM {table} WHERE account_id = ?1 AND monitor_id = ?2"),
                [account, monitor],
                |r| r.get(0),
            )
            .unwrap()
        };
        (
            count("monitor_checks"),
            count("monitor_buckets"),
            count("monitor_transitions"),
        )
    }
}

struct Redis {
    prefix: redis_support::Prefix,
    store: Arc<RedisStore>,
}

impl Redis {
    fn new() -> Self {
        let prefix = redis_support::Prefix::fresh();
        // Nothing is appended: the feed is never read.
        let (tx, _) = mpsc::channel(16);
        let store = Arc::new(prefix.store(tx, Retention::default()));
        Redis { prefix, store }
    }
}

impl Backend for Redis {
    fn store(&self) -> Arc<dyn MonitorHistory> {
        self.store.clone()
    }

    async fn reopen(&mut self) {
        EventLog::close(self.store.as_ref()).await.unwrap();
        let (tx, _) = mpsc::channel(16);
        self.store = Arc::new(self.prefix.store(tx, Retention::default()));
    }

    fn footprint(&self, account: &str, monitor: &str) -> (u64, u64, u64) {
        let client = ::redis::Client::open(redis_support::SHARED_URL).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mine: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix.name))
            .query(&mut conn)
            .unwrap();
        let base = format!("{}:{{{account}}}:hist:{monitor}:", self.prefix.name);
        // Nothing but the account's set and the monitor's three keys.
        for key in &mine {
            assert!(
                key.starts_with(&base) || key.ends_with(":hist"),
                "unexpected key {key}"
            );
        }
        let mut card = |what: &str| -> u64 {
            ::redis::cmd("ZCARD")
                .arg(format!("{base}{what}"))
                .query(&mut conn)
                .unwrap()
        };
        (card("checks"), card("buckets"), card("transitions"))
    }
}

macro_rules! history_conformance {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn checks_and_transitions_are_read_back_by_range() {
                super::checks_and_transitions_are_read_back_by_range(&$backend).await;
            }

            #[tokio::test]
            async fn forty_days_of_checks_stay_bounded_and_add_up() {
                super::forty_days_of_checks_stay_bounded_and_add_up(&$backend).await;
            }

            #[tokio::test]
            async fn history_survives_a_reopen() {
                super::history_survives_a_reopen(&mut $backend).await;
            }
        }
    };
}

history_conformance!(sqlite, Sqlite::new());
history_conformance!(redis, Redis::new());

fn check(at_ms: i64, ok: bool, latency_ms: u64, transition: Option<&str>) -> CheckRecord {
    CheckRecord {
        at_ms,
        ok,
        health: if ok { "healthy" } else { "unhealthy" }.into(),
        latency_ms,
        http_status: Some(if ok { 200 } else { 503 }),
        error: (!ok).then(|| "unexpected_status: 503".into()),
        transition: transition.map(str::to_owned),
    }
}

async fn checks_and_transitions_are_read_back_by_range(backend: &impl Backend) {
    let store = backend.store();
    let policy = HistoryPolicy::default();
    let checks = [
        check(T0, true, 12, Some("status_change")),
        check(T0 + 1000, true, 15, None),
        check(T0 + 2000, false, 30, Some("error_state")),
        check(T0 + 2000, false, 30, None),
        check(T0 + 3000, true, 9, Some("recovery")),
    ];
    for c in &checks {
        store
            .record("acme", "api", c.clone(), policy)
            .await
            .unwrap();
    }
    store
        .record("acme", "db", check(T0 + 500, true, 1, None), policy)
        .await
        .unwrap();
    store
        .record("other", "api", check(T0 + 500, false, 1, None), policy)
        .await
        .unwrap();

    let all = store
        .history("acme", "api", T0, T0 + 3000, usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        all.checks, checks,
        "every field back, oldest first, equal times kept"
    );
    assert!(all.buckets.is_empty(), "nothing is past the raw window");
    let transitions: Vec<Transition> = checks.iter().filter_map(Transition::of).collect();
    assert_eq!(all.transitions, transitions);
    assert_eq!(all.transitions[1].health, "unhealthy");

    let middle = store
        .history("acme", "api", T0 + 1000, T0 + 2000, usize::MAX)
        .await
        .unwrap();
    assert_eq!(middle.checks, checks[1..4], "both ends inclusive");
    assert_eq!(middle.transitions, transitions[1..2]);
    let newest = store
        .history("acme", "api", T0, T0 + 3000, 3)
        .await
        .unwrap();
    assert_eq!(newest.checks, checks[2..], "the newest three, oldest first");
    assert_eq!(
        newest.transitions, transitions,
        "the limit is on checks only"
    );

    assert_eq!(
        store.account_counts("acme", T0).await.unwrap(),
        AccountCounts {
            checks: 6,
            transitions: 3
        }
    );
    assert_eq!(
        store.account_counts("acme", T0 + 2001).await.unwrap(),
        AccountCounts {
            checks: 1,
            transitions: 1
        }
    );

    assert!(store.forget("acme", "api").await.unwrap());
    assert!(!store.forget("acme", "api").await.unwrap(), "nothing left");
    let gone = store
        .history("acme", "api", 0, i64::MAX, usize::MAX)
        .await
        .unwrap();
    assert!(gone.checks.is_empty() && gone.transitions.is_empty());
    assert_eq!(store.account_counts("acme", 0).await.unwrap().checks, 1);
    assert_eq!(
        store
            .history("other", "api", 0, i64::MAX, usize::MAX)
            .await
            .unwrap()
            .checks
            .len(),
        1,
        "another account's monitor of the same id is untouched"
    );
}

async fn forty_days_of_checks_stay_bounded_and_add_up(backend: &impl Backend) {
    let store = backend.store();
    let policy = HistoryPolicy::default();
    let every = 10 * 60 * 1000; // a check every ten minutes
    let count = 40 * DAY / every;
    let mut recorded = Vec::new();
    for i in 0..count {
        let ok = i % 7 != 0;
        let transition = (i % 100 == 0).then_some("error_state");
        recorded.push(check(T0 + i * every, ok, (i % 50) as u64 + 1, transition));
    }
    // Submitted in groups, as a busy heartbeat would (SQLite commits each group together).
    for group in recorded.chunks(64) {
        let writes = group
            .iter()
            .map(|c| store.record("acme", "api", c.clone(), policy));
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }

    let newest = recorded.last().unwrap().at_ms;
    let (raw, buckets, transitions) = backend.footprint("acme", "api");
    let per_bucket = HOUR / every;
    assert!(
        raw as i64 <= (DAY + HOUR) / every + 1,
        "{raw} checks kept one by one after 40 days"
    );
    assert!(
        raw as i64 >= DAY / every,
        "the last 24 h are kept one by one"
    );
    assert!(
        buckets as i64 <= 30 * 24 + 1,
        "{buckets} buckets after 40 days"
    );
    assert!(
        buckets as i64 >= 29 * 24 - 1,
        "the older days are kept as buckets"
    );
    assert!(transitions <= 30 * DAY as u64 / (100 * every as u64) + 1);

    // What is kept adds up to the checks of the window, computed here.
    let fold_before = (newest - DAY).div_euclid(HOUR) * HOUR;
    let kept: Vec<&CheckRecord> = recorded
        .iter()
        .filter(|c| {
            c.at_ms >= fold_before || (c.at_ms.div_euclid(HOUR) * HOUR) >= newest - 30 * DAY
        })
        .collect();
    let range = store
        .history("acme", "api", 0, i64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(range.checks.len() as u64, raw);
    assert!(range.checks.iter().all(|c| c.at_ms >= fold_before));
    let in_buckets: u64 = range.buckets.iter().map(|b| b.checks).sum();
    let ok_in_buckets: u64 = range.buckets.iter().map(|b| b.ok).sum();
    let ok_raw = range.checks.iter().filter(|c| c.ok).count() as u64;
    assert_eq!(in_buckets + raw, kept.len() as u64);
    assert_eq!(
        ok_in_buckets + ok_raw,
        kept.iter().filter(|c| c.ok).count() as u64
    );
    for b in &range.buckets {
        assert_eq!(b.start_ms % HOUR, 0);
        assert_eq!(b.checks, per_bucket as u64, "a whole hour per bucket");
        assert_eq!(b.healthy + b.unhealthy + b.unknown, b.checks);
        let mine: Vec<&CheckRecord> = recorded
            .iter()
            .filter(|c| c.at_ms.div_euclid(HOUR) * HOUR == b.start_ms)
            .collect();
        let latencies = mine.iter().map(|c| c.latency_ms);
        assert_eq!(b.latency_sum, latencies.clone().sum::<u64>());
        assert_eq!(b.latency_min, latencies.clone().min().unwrap());
        assert_eq!(b.latency_max, latencies.max().unwrap());
    }
}

async fn history_survives_a_reopen(backend: &mut impl Backend) {
    let policy = HistoryPolicy::default();
    let old = check(T0 - 2 * DAY, false, 40, Some("error_state"));
    let new = check(T0, true, 12, Some("recovery"));
    for c in [&old, &new] {
        backend
            .store()
            .record("acme", "api", c.clone(), policy)
            .await
            .unwrap();
    }
    let before = backend
        .store()
        .history("acme", "api", 0, i64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(before.checks, std::slice::from_ref(&new));
    assert_eq!(before.buckets.len(), 1, "the older check was folded");
    backend.reopen().await;
    let after = backend
        .store()
        .history("acme", "api", 0, i64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(after, before, "checks, buckets and transitions all kept");
}
