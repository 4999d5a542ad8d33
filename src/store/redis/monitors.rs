//! Heartbeat monitors in Redis: per account, one hash of specs and one of
//! saved check states (monitor id → JSON), both under the account's hash
//! tag so each write is one atomic command or script in one slot.

use super::{
    conn,
    keys::{Keys, MONITOR_SPECS_SUFFIX},
    scripts::SCRIPTS,
};
use crate::store::{StoreError, StoredMonitor};
use redis::AsyncCommands;
use serde_json::Value;
use std::collections::HashMap;

pub async fn put(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    id: &str,
    spec: &Value,
) -> Result<bool, StoreError> {
    let k = keys.account(account_id);
    // HSET answers how many fields it added: 1 when the monitor is new.
    let added: u64 = conn::bounded(conn.hset(&k.monitor_specs, id, spec.to_string())).await?;
    Ok(added == 1)
}

pub async fn save_state(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    id: &str,
    state: &Value,
) -> Result<bool, StoreError> {
    let k = keys.account(account_id);
    let saved: u64 = conn::bounded(
        SCRIPTS
            .save_monitor_state
            .key(&k.monitor_specs)
            .key(&k.monitor_states)
            .arg(id)
            .arg(state.to_string())
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(saved == 1)
}

pub async fn delete(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let k = keys.account(account_id);
    let deleted: u64 = conn::bounded(
        SCRIPTS
            .delete_monitor
            .key(&k.monitor_specs)
            .key(&k.monitor_states)
            .arg(id)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(deleted == 1)
}

pub async fn get(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    id: &str,
) -> Result<Option<StoredMonitor>, StoreError> {
    let k = keys.account(account_id);
    let (spec, state): (Option<String>, Option<String>) = conn::bounded(
        redis::pipe()
            .atomic()
            .hget(&k.monitor_specs, id)
            .hget(&k.monitor_states, id)
            .query_async(&mut conn),
    )
    .await?;
    Ok(spec.and_then(|spec| decode(account_id, id, &spec, state.as_deref())))
}

/// One account's monitors, or every account's (found by `SCAN`), ordered
/// by account then id.
pub async fn list(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: Option<&str>,
) -> Result<Vec<StoredMonitor>, StoreError> {
    let accounts: Vec<String> = match account_id {
        Some(account_id) => vec![account_id.to_owned()],
        None => conn::scan(&mut conn, &keys.pattern(MONITOR_SPECS_SUFFIX))
            .await?
            .iter()
            .filter_map(|key| keys.account_of(key, MONITOR_SPECS_SUFFIX))
            .map(str::to_owned)
            .collect(),
    };
    let mut monitors = Vec::new();
    for account in accounts {
        let k = keys.account(&account);
        let (specs, states): (HashMap<String, String>, HashMap<String, String>) = conn::bounded(
            redis::pipe()
                .atomic()
                .hgetall(&k.monitor_specs)
                .hgetall(&k.monitor_states)
                .query_async(&mut conn),
        )
        .await?;
        let mut ids: Vec<&String> = specs.keys().collect();
        ids.sort();
        for id in ids {
            let state = states.get(id).map(String::as_str);
            monitors.extend(decode(&account, id, &specs[id], state));
        }
    }
    monitors.sort_by(|a, b| (&a.account_id, &a.id).cmp(&(&b.account_id, &b.id)));
    Ok(monitors)
}

/// A stored monitor; one whose spec no longer parses is skipped with a
/// warning rather than failing the read (as SQLite does).
fn decode(account_id: &str, id: &str, spec: &str, state: Option<&str>) -> Option<StoredMonitor> {
    let Ok(spec) = serde_json::from_str(spec) else {
        tracing::warn!(account = %account_id, monitor = %id, "skipping a monitor whose stored spec is not JSON");
        return None;
    };
    Some(StoredMonitor {
        account_id: account_id.to_owned(),
        id: id.to_owned(),
        spec,
        state: state.and_then(|s| serde_json::from_str(s).ok()),
    })
}
