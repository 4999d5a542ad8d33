//! The Lua scripts, kept as `.lua` files beside this module. redis-rs sends
//! them by SHA (`EVALSHA`) and loads them again when Redis has forgotten
//! them (after a restart).

use redis::Script;
use std::sync::LazyLock;

pub struct Scripts {
    pub append: Script,
    pub snapshot: Script,
    pub history: Script,
    pub trim: Script,
    pub save_monitor_state: Script,
    pub delete_monitor: Script,
    pub record_check: Script,
    pub lease_acquire: Script,
    pub lease_renew: Script,
    pub lease_release: Script,
    pub take_token: Script,
    pub put_webhook: Script,
    pub delete_webhook: Script,
    pub claim_outbox: Script,
    pub settle_outbox: Script,
    pub rotate_webhook: Script,
}

pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    append: Script::new(include_str!("scripts/append.lua")),
    snapshot: Script::new(include_str!("scripts/snapshot.lua")),
    history: Script::new(include_str!("scripts/history.lua")),
    trim: Script::new(include_str!("scripts/trim.lua")),
    save_monitor_state: Script::new(include_str!("scripts/save_monitor_state.lua")),
    delete_monitor: Script::new(include_str!("scripts/delete_monitor.lua")),
    record_check: Script::new(include_str!("scripts/record_check.lua")),
    lease_acquire: Script::new(include_str!("scripts/lease_acquire.lua")),
    lease_renew: Script::new(include_str!("scripts/lease_renew.lua")),
    lease_release: Script::new(include_str!("scripts/lease_release.lua")),
    take_token: Script::new(include_str!("scripts/take_token.lua")),
    put_webhook: Script::new(include_str!("scripts/put_webhook.lua")),
    delete_webhook: Script::new(include_str!("scripts/delete_webhook.lua")),
    claim_outbox: Script::new(include_str!("scripts/claim_outbox.lua")),
    settle_outbox: Script::new(include_str!("scripts/settle_outbox.lua")),
    rotate_webhook: Script::new(include_str!("scripts/rotate_webhook.lua")),
});
