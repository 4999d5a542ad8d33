//! Token buckets in Redis: one hash per bucket (`tokens`, `at`), taken from
//! by one script that reads Redis's own clock (`TIME`), so every node sees
//! one bucket and node clocks do not matter.

use super::{conn, scripts::SCRIPTS};
use crate::store::StoreError;

use std::time::Duration;

pub async fn take(
    mut conn: conn::Conn,
    key: String,
    rate: f64,
    burst: f64,
) -> Result<Option<Duration>, StoreError> {
    let wait_ms: u64 = conn::bounded(
        SCRIPTS
            .take_token
            .key(key)
            .arg(rate)
            .arg(burst)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
}
