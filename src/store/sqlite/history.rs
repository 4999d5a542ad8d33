//! The monitor history role on SQLite: a check is one row of
//! `monitor_checks`; the writer folds rows past the raw window into
//! `monitor_buckets` in the same transaction as the insert, so a monitor's
//! rows stay bounded; transitions have their own small table. Writes join the
//! writer's group commit; reads use the read pool.

use super::{SqliteStore, writer::WriteOp};
use crate::store::{
    AccountCounts, Bucket, CheckRecord, HistoryPolicy, HistoryRange, MAX_TRANSITIONS,
    MonitorHistory, StoreFuture, Transition,
};
use rusqlite::{Connection, params};

/// The schema migration that adds history (appended to `schema::MIGRATIONS`).
pub(super) const SCHEMA: &str = r#"
    CREATE TABLE monitor_checks (
        account_id  TEXT    NOT NULL,
        monitor_id  TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        health      TEXT    NOT NULL,
        latency_ms  INTEGER NOT NULL,
        http_status INTEGER,
        error       TEXT,
        transition  TEXT
    );
    CREATE INDEX monitor_checks_by_monitor ON monitor_checks (account_id, monitor_id, at_ms);
    CREATE INDEX monitor_checks_by_account ON monitor_checks (account_id, at_ms);
    CREATE TABLE monitor_buckets (
        account_id  TEXT    NOT NULL,
        monitor_id  TEXT    NOT NULL,
        start_ms    INTEGER NOT NULL,
        checks      INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        healthy     INTEGER NOT NULL,
        unhealthy   INTEGER NOT NULL,
        unknown     INTEGER NOT NULL,
        transitions INTEGER NOT NULL,
        latency_sum INTEGER NOT NULL,
        latency_min INTEGER NOT NULL,
        latency_max INTEGER NOT NULL,
        PRIMARY KEY (account_id, monitor_id, start_ms)
    ) WITHOUT ROWID;
    CREATE TABLE monitor_transitions (
        account_id TEXT    NOT NULL,
        monitor_id TEXT    NOT NULL,
        at_ms      INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        health     TEXT    NOT NULL
    );
    CREATE INDEX monitor_transitions_by_monitor ON monitor_transitions (account_id, monitor_id, at_ms);
    CREATE INDEX monitor_transitions_by_account ON monitor_transitions (account_id, at_ms);
"#;

/// A history write, queued for the writer thread.
pub(super) enum HistoryWrite {
    Record {
        account_id: String,
        monitor_id: String,
        check: CheckRecord,
        policy: HistoryPolicy,
    },
    Forget {
        account_id: String,
        monitor_id: String,
    },
}

impl MonitorHistory for SqliteStore {
    fn record<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        check: CheckRecord,
        policy: HistoryPolicy,
    ) -> StoreFuture<'a, ()> {
        let write = HistoryWrite::Record {
            account_id: account_id.to_owned(),
            monitor_id: monitor_id.to_owned(),
            check,
            policy,
        };
        Box::pin(async move {
            self.submit(|tx| WriteOp::History(write, tx)).await?;
            Ok(())
        })
    }

    fn history<'a>(
        &'a self,
        account_id: &'a str,
        monitor_id: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> StoreFuture<'a, HistoryRange> {
        let (account_id, monitor_id) = (account_id.to_owned(), monitor_id.to_owned());
        Box::pin(
            self.read(move |conn| {
                read_range(conn, (&account_id, &monitor_id), from_ms, to_ms, limit)
            }),
        )
    }

    fn account_counts<'a>(
        &'a self,
        account_id: &'a str,
        since_ms: i64,
    ) -> StoreFuture<'a, AccountCounts> {
        let account_id = account_id.to_owned();
        Box::pin(self.read(move |conn| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                conn.prepare_cached(sql)?
                    .query_row(params![account_id, since_ms], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
            };
            Ok(AccountCounts {
                checks: count(
                    "SELECT count(*) FROM monitor_checks WHERE account_id = ?1 AND at_ms >= ?2",
                )?,
                transitions: count(
                    "SELECT count(*) FROM monitor_transitions WHERE account_id = ?1 AND at_ms >= ?2",
                )?,
            })
        }))
    }

    fn forget<'a>(&'a self, account_id: &'a str, monitor_id: &'a str) -> StoreFuture<'a, bool> {
        let write = HistoryWrite::Forget {
            account_id: account_id.to_owned(),
            monitor_id: monitor_id.to_owned(),
        };
        Box::pin(self.submit(|tx| WriteOp::History(write, tx)))
    }
}

/// One history write inside the batch transaction. A record returns true;
/// a forget whether there was anything to forget.
pub(super) fn write_history(
    tx: &rusqlite::Transaction<'_>,
    write: &HistoryWrite,
) -> rusqlite::Result<bool> {
    match write {
        HistoryWrite::Record {
            account_id,
            monitor_id,
            check,
            policy,
        } => {
            record(tx, account_id, monitor_id, check, policy)?;
            Ok(true)
        }
        HistoryWrite::Forget {
            account_id,
            monitor_id,
        } => {
            let mut gone = 0;
            for table in ["monitor_checks", "monitor_buckets", "monitor_transitions"] {
                gone += tx
                    .prepare_cached(&format!(
                        "DELETE FROM {table} WHERE account_id = ?1 AND monitor_id = ?2"
                    ))?
                    .execute(params![account_id, monitor_id])?;
            }
            Ok(gone > 0)
        }
    }
}

fn record(
    tx: &rusqlite::Transaction<'_>,
    account_id: &str,
    monitor_id: &str,
    check: &CheckRecord,
    policy: &HistoryPolicy,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO monitor_checks
         (account_id, monitor_id, at_ms, ok, health, latency_ms, http_status, error, transition)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        account_id,
        monitor_id,
        check.at_ms,
        check.ok,
        check.health,
        check.latency_ms as i64,
        check.http_status,
        check.error,
        check.transition,
    ])?;
    if let Some(t) = Transition::of(check) {
        tx.prepare_cached(
            "INSERT INTO monitor_transitions (account_id, monitor_id, at_ms, kind, health)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![account_id, monitor_id, t.at_ms, t.kind, t.health])?;
        tx.prepare_cached(
            "DELETE FROM monitor_transitions WHERE rowid IN (
                 SELECT rowid FROM monitor_transitions WHERE account_id = ?1 AND monitor_id = ?2
                 ORDER BY at_ms DESC LIMIT -1 OFFSET ?3)",
        )?
        .execute(params![account_id, monitor_id, MAX_TRANSITIONS as i64])?;
    }
    let fold_before = policy.fold_before(check.at_ms);
    let b = policy.bucket_ms();
    // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the upsert.
    tx.prepare_cached(
        "INSERT INTO monitor_buckets
         (account_id, monitor_id, start_ms, checks, ok, healthy, unhealthy, unknown,
          transitions, latency_sum, latency_min, latency_max)
         SELECT account_id, monitor_id, (at_ms / ?4) * ?4, count(*), sum(ok),
                sum(health = 'healthy'), sum(health = 'unhealthy'),
                sum(health NOT IN ('healthy', 'unhealthy')), count(transition),
                sum(latency_ms), min(latency_ms), max(latency_ms)
         FROM monitor_checks WHERE account_id = ?1 AND monitor_id = ?2 AND at_ms < ?3 AND true
         GROUP BY (at_ms / ?4)
         ON CONFLICT (account_id, monitor_id, start_ms) DO UPDATE SET
             checks = checks + excluded.checks, ok = ok + excluded.ok,
             healthy = healthy + excluded.healthy, unhealthy = unhealthy + excluded.unhealthy,
             unknown = unknown + excluded.unknown, transitions = transitions + excluded.transitions,
             latency_sum = latency_sum + excluded.latency_sum,
             latency_min = min(latency_min, excluded.latency_min),
             latency_max = max(latency_max, excluded.latency_max)",
    )?
    .execute(params![account_id, monitor_id, fold_before, b])?;
    tx.prepare_cached(
        "DELETE FROM monitor_checks WHERE account_id = ?1 AND monitor_id = ?2 AND at_ms < ?3",
    )?
    .execute(params![account_id, monitor_id, fold_before])?;
    let drop_before = policy.drop_before(check.at_ms);
    for table in [
        ("monitor_buckets", "start_ms"),
        ("monitor_transitions", "at_ms"),
    ] {
        tx.prepare_cached(&format!(
            "DELETE FROM {} WHERE account_id = ?1 AND monitor_id = ?2 AND {} < ?3",
            table.0, table.1
        ))?
        .execute(params![account_id, monitor_id, drop_before])?;
    }
    Ok(())
}

fn read_range(
    conn: &mut Connection,
    (account_id, monitor_id): (&str, &str),
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> rusqlite::Result<HistoryRange> {
    let args = params![account_id, monitor_id, from_ms, to_ms];
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut checks = conn
        .prepare_cached(
            "SELECT at_ms, ok, health, latency_ms, http_status, error, transition
             FROM monitor_checks WHERE account_id = ?1 AND monitor_id = ?2
             AND at_ms BETWEEN ?3 AND ?4 ORDER BY at_ms DESC, rowid DESC LIMIT ?5",
        )?
        .query_map(
            params![account_id, monitor_id, from_ms, to_ms, limit],
            |r| {
                Ok(CheckRecord {
                    at_ms: r.get(0)?,
                    ok: r.get(1)?,
                    health: r.get(2)?,
                    latency_ms: r.get::<_, i64>(3)?.max(0) as u64,
                    http_status: r.get(4)?,
                    error: r.get(5)?,
                    transition: r.get(6)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    checks.reverse();
    let count = |r: &rusqlite::Row<'_>, i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    let buckets = conn
        .prepare_cached(
            "SELECT start_ms, checks, ok, healthy, unhealthy, unknown, transitions,
                    latency_sum, latency_min, latency_max
             FROM monitor_buckets WHERE account_id = ?1 AND monitor_id = ?2
             AND start_ms BETWEEN ?3 AND ?4 ORDER BY start_ms",
        )?
        .query_map(args, |r| {
            Ok(Bucket {
                start_ms: r.get(0)?,
                checks: count(r, 1)?,
                ok: count(r, 2)?,
                healthy: count(r, 3)?,
                unhealthy: count(r, 4)?,
                unknown: count(r, 5)?,
                transitions: count(r, 6)?,
                latency_sum: count(r, 7)?,
                latency_min: count(r, 8)?,
                latency_max: count(r, 9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let transitions = conn
        .prepare_cached(
            "SELECT at_ms, kind, health FROM monitor_transitions
             WHERE account_id = ?1 AND monitor_id = ?2 AND at_ms BETWEEN ?3 AND ?4
             ORDER BY at_ms, rowid",
        )?
        .query_map(args, |r| {
            Ok(Transition {
                at_ms: r.get(0)?,
                kind: r.get(1)?,
                health: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(HistoryRange {
        checks,
        buckets,
        transitions,
    })
}
