//! Reads of the event log and its upkeep: snapshot, history pages and
//! age-based trimming. Each read is one script, so what it returns is one
//! consistent moment of the account (Redis runs a script alone).

use super::{
    codec, conn,
    keys::{EVENTS_SUFFIX, Keys},
    scripts::SCRIPTS,
};
use crate::store::{History, Section, Snapshot, StoreError};
use redis::Value;
use std::time::Duration;

pub async fn snapshot(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
) -> Result<Snapshot, StoreError> {
    let k = keys.account(account_id);
    let reply: Value = conn::bounded(
        SCRIPTS
            .snapshot
            .key(&k.meta)
            .key(&k.entries)
            .arg(conn::new_epoch())
            .invoke_async(&mut conn),
    )
    .await?;
    let bad = || conn::malformed("snapshot");
    let items = codec::array(&reply).ok_or_else(bad)?;
    let [epoch, seq, entries] = items else {
        return Err(bad());
    };
    let mut snapshot = Snapshot {
        account_id: account_id.to_owned(),
        epoch: codec::text(epoch).ok_or_else(bad)?,
        seq: codec::int(seq).ok_or_else(bad)?,
        ..Snapshot::default()
    };
    for (field, value) in codec::pairs(entries).ok_or_else(bad)? {
        let Some((section, key)) = field.split_once(':') else {
            continue;
        };
        if let (Some(section), Ok(value)) = (Section::parse(section), serde_json::from_str(&value))
        {
            snapshot.section_mut(section).insert(key.to_owned(), value);
        }
    }
    Ok(snapshot)
}

pub async fn events_since(
    mut conn: conn::Conn,
    keys: &Keys,
    account_id: &str,
    since: u64,
    limit: usize,
) -> Result<History, StoreError> {
    let k = keys.account(account_id);
    let reply: Value = conn::bounded(
        SCRIPTS
            .history
            .key(&k.meta)
            .key(&k.events)
            .arg(conn::new_epoch())
            .arg(since)
            .arg(limit)
            .invoke_async(&mut conn),
    )
    .await?;
    let bad = || conn::malformed("events_since");
    let items = codec::array(&reply).ok_or_else(bad)?;
    let [epoch, head, first, page] = items else {
        return Err(bad());
    };
    let head = codec::int(head).ok_or_else(bad)?;
    let first = codec::text(first)
        .and_then(|id| codec::seq_of_id(&id))
        .ok_or_else(bad)?;
    let mut events = Vec::new();
    for entry in codec::array(page).ok_or_else(bad)? {
        let [id, fields] = codec::array(entry).ok_or_else(bad)? else {
            return Err(bad());
        };
        let seq = codec::text(id)
            .and_then(|id| codec::seq_of_id(&id))
            .ok_or_else(bad)?;
        let body = codec::pairs(fields)
            .ok_or_else(bad)?
            .into_iter()
            .find_map(|(field, value)| (field == "b").then_some(value));
        match body.and_then(|body| codec::decode_body(account_id, seq, &body)) {
            Some(event) => events.push(event),
            None => {
                tracing::warn!(account = %account_id, seq, "skipping a stored event that does not decode")
            }
        }
    }
    // `first` is 0 when nothing is retained.
    let complete = since == head || (since < head && first != 0 && first <= since + 1);
    Ok(History {
        events,
        head,
        complete,
        epoch: codec::text(epoch).ok_or_else(bad)?,
    })
}

/// Trims every account's stream by age. Accounts are found with `SCAN`
/// (no global index that a cluster would have to keep in another slot);
/// it runs in the background, bounded per account, not per request.
pub async fn trim(mut conn: conn::Conn, keys: &Keys, max_age: Duration) -> Result<u64, StoreError> {
    let streams = conn::scan(&mut conn, &keys.pattern(EVENTS_SUFFIX)).await?;
    let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    let mut dropped = 0;
    for stream in streams {
        let n: u64 = conn::bounded(
            SCRIPTS
                .trim
                .key(&stream)
                .arg(max_age_ms)
                .invoke_async(&mut conn),
        )
        .await?;
        dropped += n;
    }
    Ok(dropped)
}
