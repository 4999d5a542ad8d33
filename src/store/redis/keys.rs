//! Where everything lives in Redis.
//!
//! Every key of one account carries the hash tag `{account}` under the
//! configured prefix (`<prefix>:{<account>}:<what>`), so every script touches
//! keys of one slot and the same layout runs unchanged on Redis Cluster. The
//! prefix lets several hubs (or test runs) share one Redis; it is restricted
//! to characters that are neither hash-tag braces nor glob patterns, so a
//! `SCAN MATCH` over it matches only our keys. Account ids are validated by
//! the API to the same kind of plain characters.

/// Builds the keys of one deployment (one prefix).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

/// The keys and channel of one account.
pub struct AccountKeys {
    /// Hash: `epoch` (names the account's sequence) and `seq` (its head).
    pub meta: String,
    /// Stream of committed events; entry id `<seq>-0`, fields `b` (the
    /// event's body as JSON) and `ms` (Redis time when stored).
    pub events: String,
    /// Hash: `<section>:<key>` → the snapshot entry's JSON.
    pub entries: String,
    /// Hash: monitor id → its spec's JSON.
    pub monitor_specs: String,
    /// Hash: monitor id → its last saved check state's JSON.
    pub monitor_states: String,
    /// Pub/sub channel every committed event is published on.
    pub channel: String,
    /// Hash: webhook delivery id → delivery JSON (written by the append script).
    pub outbox: String,
    /// Sorted set of pending delivery ids, by seq.
    pub outbox_pending: String,
    tagged: String,
}

impl AccountKeys {
    /// The idempotency record of one `Idempotency-Key` (a hash that expires).
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.tagged)
    }

    /// Set of the ids of the account's monitors that have history.
    pub fn history_monitors(&self) -> String {
        format!("{}:hist", self.tagged)
    }

    /// One monitor's history: its checks, buckets and transitions (zsets by time).
    pub fn history(&self, monitor_id: &str) -> [String; 3] {
        let base = format!("{}:hist:{monitor_id}", self.tagged);
        [
            format!("{base}:checks"),
            format!("{base}:buckets"),
            format!("{base}:transitions"),
        ]
    }

    /// Another key of this account, `<prefix>:{<account>}:<what>` (for roles
    /// that keep their own layout, such as `jobs`).
    pub fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.tagged)
    }

    /// One node's presence entries for the account (a JSON list that expires).
    pub fn presence(&self, node: &str) -> String {
        format!("{}:presence:{node}", self.tagged)
    }

    /// Set: the nodes that published presence for the account.
    pub fn presence_nodes(&self) -> String {
        format!("{}:presence-nodes", self.tagged)
    }
}

/// The suffixes `SCAN` looks for when it has to visit every account.
pub const EVENTS_SUFFIX: &str = ":events";
pub const MONITOR_SPECS_SUFFIX: &str = ":monitor-specs";
pub const OUTBOX_PENDING_SUFFIX: &str = ":outbox-pending";

impl Keys {
    /// `prefix` must be 1..=64 characters of `[A-Za-z0-9_.:-]`.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        if !(1..=64).contains(&prefix.len()) || !prefix.bytes().all(plain) {
            return Err(format!(
                "key prefix {prefix:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"
            ));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }

    pub fn account(&self, account_id: &str) -> AccountKeys {
        let tagged = format!("{}:{{{account_id}}}", self.prefix);
        AccountKeys {
            meta: format!("{tagged}:meta"),
            events: format!("{tagged}{EVENTS_SUFFIX}"),
            entries: format!("{tagged}:entries"),
            monitor_specs: format!("{tagged}{MONITOR_SPECS_SUFFIX}"),
            monitor_states: format!("{tagged}:monitor-states"),
            channel: format!("{tagged}:feed"),
            outbox: format!("{tagged}:outbox"),
            outbox_pending: format!("{tagged}{OUTBOX_PENDING_SUFFIX}"),
            tagged,
        }
    }

    /// A key of the deployment rather than of one account,
    /// `<prefix>:<what>` (an index to visit accounts without `SCAN`).
    pub fn global(&self, what: &str) -> String {
        format!("{}:{what}", self.prefix)
    }

    /// The key of a lease (`<prefix>:lease:<name>`): one key per script, so
    /// it needs no account hash tag.
    pub fn lease(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.prefix)
    }

    /// The key of a token bucket (`<prefix>:rate:<name>`).
    pub fn rate(&self, name: &str) -> String {
        format!("{}:rate:{name}", self.prefix)
    }

    /// Hash: webhook endpoint id → endpoint JSON (every account's; not
    /// under an account's hash tag).
    pub fn webhooks(&self) -> String {
        format!("{}:webhooks", self.prefix)
    }

    /// Set: the accounts that have had webhook deliveries (the dispatcher
    /// visits their outboxes; rebuilt by `SCAN` when the store opens).
    pub fn outbox_accounts(&self) -> String {
        format!("{}:outbox-accounts", self.prefix)
    }

    /// A `SCAN MATCH` pattern for one kind of per-account key.
    pub fn pattern(&self, suffix: &str) -> String {
        format!("{}:{{*}}{suffix}", self.prefix)
    }

    /// The account a key found by [`Keys::pattern`] belongs to.
    pub fn account_of<'k>(&self, key: &'k str, suffix: &str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix(suffix)?
            .strip_suffix('}')
    }
}

/// The snapshot entry field of `key` in `section`.
pub fn entry_field(section: &str, key: &str) -> String {
    format!("{section}:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_account_shares_its_hash_tag() {
        let keys = Keys::new("sh").unwrap();
        let acc = keys.account("acme");
        for key in [
            &acc.meta,
            &acc.events,
            &acc.entries,
            &acc.monitor_specs,
            &acc.monitor_states,
            &acc.channel,
            &acc.idempotency("a}b{c"),
        ] {
            assert!(key.starts_with("sh:{acme}:"), "{key}");
        }
        assert_eq!(
            keys.account_of(&acc.monitor_specs, MONITOR_SPECS_SUFFIX),
            Some("acme")
        );
        assert_eq!(keys.account_of("other:{acme}:events", EVENTS_SUFFIX), None);
    }

    #[test]
    fn prefixes_with_braces_or_globs_are_refused() {
        for bad in ["", "a{b", "a*", "a b", "x?"] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
        assert!(Keys::new("statushub:prod-1").is_ok());
    }
}
