//! The monitor role on SQLite: writes join the writer's group commit
//! (check states are saved after every check); reads use the read pool.

use super::{SqliteStore, writer::WriteOp};
use crate::store::{MonitorStore, StoreFuture, StoredMonitor};
use rusqlite::{Connection, params};
use serde_json::Value;

/// A monitor write, queued for the writer thread.
pub(super) enum MonitorWrite {
    Put {
        account_id: String,
        id: String,
        spec: String,
    },
    SaveState {
        account_id: String,
        id: String,
        state: String,
    },
    Delete {
        account_id: String,
        id: String,
    },
}

impl MonitorStore for SqliteStore {
    fn put_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        spec: Value,
    ) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::Put {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
            spec: spec.to_string(),
        };
        Box::pin(self.submit(|tx| WriteOp::Monitor(write, tx)))
    }

    fn get_monitor<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMonitor>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        Box::pin(async move {
            let found = self
                .read(move |conn| {
                    read_monitors(
                        conn,
                        "WHERE account_id = ?1 AND id = ?2",
                        params![account_id, id],
                    )
                })
                .await?;
            Ok(found.into_iter().next())
        })
    }

    fn get_monitors<'a>(
        &'a self,
        account_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredMonitor>> {
        let account_id = account_id.map(str::to_owned);
        Box::pin(self.read(move |conn| match account_id {
            Some(account_id) => read_monitors(conn, "WHERE account_id = ?1", params![account_id]),
            None => read_monitors(conn, "", params![]),
        }))
    }

    fn save_monitor_state<'a>(
        &'a self,
        account_id: &'a str,
        id: &'a str,
        state: Value,
    ) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::SaveState {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
            state: state.to_string(),
        };
        Box::pin(self.submit(|tx| WriteOp::Monitor(write, tx)))
    }

    fn delete_monitor<'a>(&'a self, account_id: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let write = MonitorWrite::Delete {
            account_id: account_id.to_owned(),
            id: id.to_owned(),
        };
        Box::pin(self.submit(|tx| WriteOp::Monitor(write, tx)))
    }
}

/// One monitor write inside the batch transaction; see [`MonitorStore`] for what
/// each returns.
pub(super) fn write_monitor(
    tx: &rusqlite::Transaction<'_>,
    write: &MonitorWrite,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(match write {
        MonitorWrite::Put {
            account_id,
            id,
            spec,
        } => {
            let updated = tx
                .prepare_cached(
                    "UPDATE monitors SET spec = ?3, updated_ms = ?4 WHERE account_id = ?1 AND id = ?2",
                )?
                .execute(params![account_id, id, spec, now])?;
            if updated == 0 {
                tx.prepare_cached(
                    "INSERT INTO monitors (account_id, id, spec, state, updated_ms)
                     VALUES (?1, ?2, ?3, NULL, ?4)",
                )?
                .execute(params![account_id, id, spec, now])?;
            }
            updated == 0
        }
        MonitorWrite::SaveState {
            account_id,
            id,
            state,
        } => {
            tx.prepare_cached(
                "UPDATE monitors SET state = ?3, updated_ms = ?4 WHERE account_id = ?1 AND id = ?2",
            )?
            .execute(params![account_id, id, state, now])?
                > 0
        }
        MonitorWrite::Delete { account_id, id } => {
            tx.prepare_cached("DELETE FROM monitors WHERE account_id = ?1 AND id = ?2")?
                .execute(params![account_id, id])?
                > 0
        }
    })
}

/// Monitors matching `filter` (a `WHERE` clause over `params`). A row whose
/// JSON no longer parses is skipped, logged as an error, rather than failing the read.
fn read_monitors(
    conn: &mut Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<StoredMonitor>> {
    let sql = format!(
        "SELECT account_id, id, spec, state FROM monitors {filter} ORDER BY account_id, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut monitors = Vec::new();
    while let Some(row) = rows.next()? {
        let account_id: String = row.get(0)?;
        let id: String = row.get(1)?;
        let spec: String = row.get(2)?;
        let state: Option<String> = row.get(3)?;
        let spec = match serde_json::from_str(&spec) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::error!(account = %account_id, monitor = %id, %error, "left out a stored monitor whose settings are not JSON");
                continue;
            }
        };
        let state = state.and_then(|s| match serde_json::from_str(&s) {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::error!(account = %account_id, monitor = %id, %error, "read a stored monitor state that is not JSON as none");
                None
            }
        });
        monitors.push(StoredMonitor {
            account_id,
            id,
            spec,
            state,
        });
    }
    Ok(monitors)
}
