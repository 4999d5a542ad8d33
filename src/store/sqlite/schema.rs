//! The SQLite schema: its ordered migrations and how every connection is
//! opened (WAL, full fsync).

use rusqlite::Connection;
use std::path::Path;

/// Ordered schema migrations; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY,
        head       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE events (
        account_id   TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        id           TEXT    NOT NULL,
        event        TEXT    NOT NULL,
        data         TEXT    NOT NULL,
        published_at TEXT    NOT NULL,
        stored_ms    INTEGER NOT NULL,
        PRIMARY KEY (account_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_age ON events (stored_ms);
    CREATE TABLE entries (
        account_id TEXT    NOT NULL,
        section    TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        value      TEXT    NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (account_id, section, key)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency (
        account_id   TEXT    NOT NULL,
        key          TEXT    NOT NULL,
        fingerprint  TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        id           TEXT    NOT NULL,
        published_at TEXT    NOT NULL,
        created_ms   INTEGER NOT NULL,
        PRIMARY KEY (account_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_age ON idempotency (created_ms);
"#,
    r#"
    CREATE TABLE monitors (
        account_id TEXT    NOT NULL,
        id         TEXT    NOT NULL,
        spec       TEXT    NOT NULL,
        state      TEXT,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (account_id, id)
    ) WITHOUT ROWID;
"#,
    // The epoch names this database's sequences (see `Snapshot::epoch`): a
    // new data dir starts new sequences, so it gets a new epoch; an existing
    // one gets its epoch here, once.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(8))));
"#,
    // Monitor history (`history`).
    super::history::SCHEMA,
    // Sync jobs (`store::jobs`): at most one running job per (account, kind),
    // stated by a partial unique index as well as checked by the writer.
    r#"
    CREATE TABLE jobs (
        account_id  TEXT    NOT NULL,
        id          TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        status      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        deadline_ms INTEGER,
        doc         TEXT    NOT NULL,
        PRIMARY KEY (account_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX jobs_by_age ON jobs (account_id, created_ms, id);
    CREATE INDEX jobs_by_deadline ON jobs (deadline_ms) WHERE deadline_ms IS NOT NULL;
    CREATE UNIQUE INDEX jobs_one_running ON jobs (account_id, kind) WHERE status = 'running';
    CREATE TABLE job_idempotency (
        account_id  TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        job_id      TEXT    NOT NULL,
        created_ms  INTEGER NOT NULL,
        PRIMARY KEY (account_id, key)
    ) WITHOUT ROWID;
"#,
    // Webhooks: the endpoint registry and the outbox `append` writes into
    // (store::webhooks). `account_id` '' = an endpoint of every account.
    r#"
    CREATE TABLE webhooks (
        id         TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        enabled    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        delivery_id     TEXT PRIMARY KEY,
        endpoint_id     TEXT    NOT NULL,
        account_id      TEXT    NOT NULL,
        seq             INTEGER NOT NULL,
        event_id        TEXT    NOT NULL,
        event           TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        lease_until_ms  INTEGER NOT NULL DEFAULT 0,
        last_status     INTEGER,
        last_error      TEXT,
        last_latency_ms INTEGER,
        created_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX outbox_queue ON outbox (endpoint_id, account_id, status, seq);
    CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
    CREATE INDEX outbox_by_endpoint ON outbox (endpoint_id, created_ms);
"#,
];

pub(super) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the publish is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(conn: &Connection) -> String {
        conn.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .expect("an epoch")
    }

    #[test]
    fn a_database_from_before_epochs_gets_one_and_keeps_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        // The schema as it was before the epoch migration.
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        migrate(&mut conn).unwrap();
        let first = epoch(&conn);
        assert_eq!(first.len(), 16, "{first}");
        migrate(&mut conn).unwrap();
        assert_eq!(epoch(&conn), first, "migrating again changes nothing");

        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        assert_ne!(epoch(&fresh), first, "a new database, a new epoch");
    }
}
