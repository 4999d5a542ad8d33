//! Leases in Redis: one string key per lease whose value is the holder,
//! expiring with the lease (`PX`). Taking one is `SET NX PX`; renewing and
//! releasing compare the holder first, in one script each, so an owner whose
//! lease expired and was taken can never extend or free the new holder's.

use super::{conn, scripts::SCRIPTS};
use crate::store::{LeaseGrant, StoreError};

use std::time::Duration;

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

pub async fn acquire(
    mut conn: conn::Conn,
    key: String,
    owner: &str,
    ttl: Duration,
) -> Result<LeaseGrant, StoreError> {
    let holder: String = conn::bounded(
        SCRIPTS
            .lease_acquire
            .key(key)
            .arg(owner)
            .arg(millis(ttl))
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(if holder.is_empty() {
        LeaseGrant::Granted
    } else {
        LeaseGrant::HeldBy(holder)
    })
}

pub async fn renew(
    mut conn: conn::Conn,
    key: String,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let renewed: u64 = conn::bounded(
        SCRIPTS
            .lease_renew
            .key(key)
            .arg(owner)
            .arg(millis(ttl))
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(renewed == 1)
}

pub async fn release(mut conn: conn::Conn, key: String, owner: &str) -> Result<bool, StoreError> {
    let released: u64 = conn::bounded(
        SCRIPTS
            .lease_release
            .key(key)
            .arg(owner)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(released == 1)
}
