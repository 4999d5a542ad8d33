//! The events the hub carries: names, the snapshot sections they update, the
//! envelope every transport shows, and the pure rules that turn a backend's
//! report into an event's data. Nothing here depends on the store; the store
//! depends on this.
//!
//! Everything here is a pure function of its input (plus the previous snapshot
//! entry where an event depends on it), so the store can run it inside its
//! append transaction and the rules are unit-testable without a server.

pub mod json;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json, value::RawValue};
use std::sync::LazyLock;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub const PHONE_STATUS_CHANGED: &str = "phone_status_changed";
pub const STATUS_SYNC: &str = "status_sync";
pub const HEALTH_CHANGED: &str = "health_changed";
pub const SYNC_PROGRESS: &str = "sync_progress";
pub const SNAPSHOT: &str = "snapshot";
/// A heartbeat monitor was deleted: drop it from `monitors` (docs/MONITORS.md).
pub const MONITOR_REMOVED: &str = "monitor_removed";

/// Names the hub emits itself; a backend may not publish them as custom events.
const RESERVED: [&str; 6] = [
    PHONE_STATUS_CHANGED,
    STATUS_SYNC,
    HEALTH_CHANGED,
    SYNC_PROGRESS,
    SNAPSHOT,
    MONITOR_REMOVED,
];

static CUSTOM_NAME: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-z][a-z0-9_.:-]{0,63}$").expect("static regex"));

/// Account ids appear in paths, room names and tokens: keep them plain.
/// The one id rule: monitor ids and token claims use it too. Ids made only
/// of dots (`.`, `..`) are refused: as path segments they mean "here" and
/// "up", which proxies and clients rewrite.
pub fn valid_account_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
        && !id.bytes().all(|b| b == b'.')
}

/// Checks a backend-chosen event name against the contract.
pub fn check_custom_name(name: &str) -> Result<(), String> {
    if !CUSTOM_NAME.is_match(name) {
        return Err(format!(
            "event name {name:?} must match ^[a-z][a-z0-9_.:-]{{0,63}}$"
        ));
    }
    if RESERVED.contains(&name) || name.starts_with("statushub:") {
        return Err(format!("event name {name:?} is reserved for the hub"));
    }
    Ok(())
}

/// Snapshot sections an event can update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Phones,
    Credentials,
    Monitors,
    Jobs,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Phones,
        Section::Credentials,
        Section::Monitors,
        Section::Jobs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Phones => "phones",
            Section::Credentials => "credentials",
            Section::Monitors => "monitors",
            Section::Jobs => "jobs",
        }
    }

    pub fn parse(s: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|section| section.as_str() == s)
    }
}

/// A committed event: what the store returns and every transport shows.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event: String,
    pub account_id: String,
    pub seq: u64,
    pub id: String,
    pub published_at: String,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// The `meta` argument Socket.IO listeners receive next to `data`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    pub account_id: &'a str,
    pub seq: u64,
    pub id: &'a str,
    pub published_at: &'a str,
}

impl Event {
    pub fn meta(&self) -> Meta<'_> {
        Meta {
            account_id: &self.account_id,
            seq: self.seq,
            id: &self.id,
            published_at: &self.published_at,
        }
    }
}

/// A unique event id: 128 random bits, hex.
pub fn new_id() -> String {
    format!("evt_{}", hex::encode(rand::random::<[u8; 16]>()))
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// A backend's test report: validated, then turned into an event that
/// updates one snapshot entry.
pub trait Report: serde::de::DeserializeOwned + Send + Sync + 'static {
    /// Route name, part of the idempotency fingerprint.
    const ROUTE: &'static str;
    const EVENT: &'static str;
    const SECTION: Section;
    fn validate(&self) -> Result<(), String>;
    /// The snapshot entry this report updates.
    fn key(&self) -> String;
    /// The event's data, given the entry's previous value.
    fn to_data(&self, previous: Option<&Value>, now: &str) -> Value;
}

/// `POST /v1/accounts/{account}/phone-tests`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"phoneNumberId": "1234567890", "isActive": true,
    "qualityRating": "GREEN", "displayPhoneNumber": "+1 555 0100", "verifiedName": "Acme"}))]
pub struct PhoneTest {
    #[schema(min_length = 1, max_length = 256)]
    pub phone_number_id: String,
    pub is_active: bool,
    pub quality_rating: Option<String>,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    /// RFC 3339; defaults to the time the hub received the report.
    #[schema(format = DateTime)]
    pub tested_at: Option<String>,
}

impl Report for PhoneTest {
    const ROUTE: &'static str = "phone-tests";
    const EVENT: &'static str = PHONE_STATUS_CHANGED;
    const SECTION: Section = Section::Phones;

    fn key(&self) -> String {
        self.phone_number_id.clone()
    }

    fn validate(&self) -> Result<(), String> {
        non_empty("phoneNumberId", &self.phone_number_id)?;
        if let Some(t) = &self.tested_at {
            parse_rfc3339(t)
                .ok_or_else(|| format!("testedAt {t:?} is not an RFC 3339 timestamp"))?;
        }
        Ok(())
    }

    /// `phone_status_changed` data. Descriptive fields this test does not
    /// carry keep the phone's last known value, so a bare `isActive` report
    /// does not blank the number a tab is showing.
    fn to_data(&self, previous: Option<&Value>, now: &str) -> Value {
        let keep = |field: &str, new: &Option<String>| match new {
            Some(v) => Value::String(v.clone()),
            None => previous
                .and_then(|p| p.get(field))
                .cloned()
                .unwrap_or(Value::Null),
        };
        json!({
            "phoneNumberId": self.phone_number_id,
            "isActive": self.is_active,
            "qualityRating": keep("qualityRating", &self.quality_rating),
            "displayPhoneNumber": keep("displayPhoneNumber", &self.display_phone_number),
            "verifiedName": keep("verifiedName", &self.verified_name),
            "lastTestedAt": self.tested_at.as_deref().unwrap_or(now),
            "status": if self.is_active { "ACTIVE" } else { "INACTIVE" },
            "timestamp": now,
        })
    }
}

/// `POST /v1/accounts/{account}/credential-tests`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"provider": "binance", "userId": "user-1", "success": false,
    "error": "invalid signature", "requestId": "req-1"}))]
pub struct CredentialTest {
    #[schema(min_length = 1, max_length = 256)]
    pub provider: String,
    #[schema(min_length = 1, max_length = 256)]
    pub user_id: String,
    pub success: bool,
    pub error: Option<String>,
    pub request_id: Option<String>,
}

impl Report for CredentialTest {
    const ROUTE: &'static str = "credential-tests";
    const EVENT: &'static str = STATUS_SYNC;
    const SECTION: Section = Section::Credentials;

    /// `{provider}:{userId}` (the contract): two users' tests of one
    /// provider are two entries. Entries stored before this key existed
    /// stay under the bare provider name (README, `snapshot`).
    fn key(&self) -> String {
        format!("{}:{}", self.provider, self.user_id)
    }

    fn validate(&self) -> Result<(), String> {
        non_empty("provider", &self.provider)?;
        non_empty("userId", &self.user_id)
    }

    /// `status_sync` data. `statusRefreshed` is true when the hub's stored
    /// status for this provider and user changed (first report, or success/error
    /// differ from the last one); `cacheInvalidated` is true when the event
    /// names client caches to refetch.
    fn to_data(&self, previous: Option<&Value>, now: &str) -> Value {
        let status_changed = self.status_changed(previous);
        let queries = self.invalidate_queries();
        let mut data = json!({
            "provider": self.provider,
            "userId": self.user_id,
            "success": self.success,
            "cacheInvalidated": !queries.is_empty(),
            "statusRefreshed": status_changed,
            "servicesNotified": [],
            "triggeredBy": "credential_test",
            "timestamp": now,
            "invalidateQueries": queries,
        });
        if let Some(error) = &self.error {
            data["error"] = Value::String(error.clone());
        }
        if let Some(id) = &self.request_id {
            data["requestId"] = Value::String(id.clone());
        }
        data
    }
}

impl CredentialTest {
    /// The client cache keys a credential test makes stale (documented in the README).
    pub fn invalidate_queries(&self) -> Vec<Vec<String>> {
        let user = self.user_id.clone();
        vec![
            vec!["credential-status".into(), user.clone()],
            vec!["api-credentials".into(), user.clone()],
            vec![format!("{}-connectivity", self.provider), user.clone()],
            vec!["account-balance".into(), user, "active".into()],
        ]
    }

    fn status_changed(&self, previous: Option<&Value>) -> bool {
        previous.is_none_or(|p| {
            p.get("success") != Some(&Value::Bool(self.success))
                || p.get("userId").and_then(Value::as_str) != Some(self.user_id.as_str())
                || p.get("error").and_then(Value::as_str) != self.error.as_deref()
        })
    }
}

/// `POST /v1/accounts/{account}/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "order.paid", "data": {"orderId": "o-1", "total": 12.5}}))]
pub struct CustomEvent {
    /// Not one of the names the hub emits itself.
    #[schema(pattern = r"^[a-z][a-z0-9_.:-]{0,63}$")]
    pub event: String,
    #[schema(value_type = Object)]
    pub data: JsonObject,
}

/// A JSON object kept as the publisher wrote it. Custom event data is
/// opaque to the hub, so it is checked to be an object and passed through
/// verbatim: no parse into a map and encode back per publish.
#[derive(Debug)]
pub struct JsonObject(pub Box<RawValue>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().starts_with('{') {
            Ok(JsonObject(raw))
        } else {
            Err(serde::de::Error::custom("data must be a JSON object"))
        }
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > 256 {
        return Err(format!("{field} is longer than 256 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_data_is_an_object_kept_verbatim() {
        let body = r#"{"event":"order.paid","data":{"z":1,"a":[true]}}"#;
        let parsed: CustomEvent = serde_json::from_str(body).expect("an object is accepted");
        assert_eq!(parsed.data.0.get(), r#"{"z":1,"a":[true]}"#);
        for data in ["[1]", "\"text\"", "3", "null", "true"] {
            let body = format!(r#"{{"event":"order.paid","data":{data}}}"#);
            let err = serde_json::from_str::<CustomEvent>(&body).expect_err(data);
            assert!(
                err.to_string().contains("data must be a JSON object"),
                "{err}"
            );
        }
    }

    #[test]
    fn ids_are_plain_and_not_only_dots() {
        for ok in [
            "a",
            "acc-1",
            "a.b",
            ".a",
            "a..",
            "user@example.com",
            &"x".repeat(128),
        ] {
            assert!(valid_account_id(ok), "{ok:?} refused");
        }
        for bad in ["", ".", "..", "...", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(!valid_account_id(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn custom_names_follow_the_contract() {
        assert!(check_custom_name("order.paid").is_ok());
        assert!(check_custom_name("a").is_ok());
        for bad in [
            "",
            "Order",
            "1abc",
            "has space",
            "phone_status_changed",
            "snapshot",
            &"a".repeat(65),
        ] {
            assert!(check_custom_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn phone_data_keeps_known_fields_and_derives_status() {
        let first = PhoneTest {
            phone_number_id: "p1".into(),
            is_active: true,
            quality_rating: Some("GREEN".into()),
            display_phone_number: Some("+1 555".into()),
            verified_name: None,
            tested_at: None,
        };
        let d1 = first.to_data(None, "T1");
        assert_eq!(d1["status"], "ACTIVE");
        assert_eq!(d1["lastTestedAt"], "T1");
        assert_eq!(d1["verifiedName"], Value::Null);
        let second = PhoneTest {
            is_active: false,
            quality_rating: None,
            display_phone_number: None,
            tested_at: Some("T0".into()),
            ..first
        };
        let d2 = second.to_data(Some(&d1), "T2");
        assert_eq!(d2["status"], "INACTIVE");
        assert_eq!(d2["displayPhoneNumber"], "+1 555");
        assert_eq!(d2["qualityRating"], "GREEN");
        assert_eq!(d2["lastTestedAt"], "T0");
    }

    #[test]
    fn credential_data_reports_real_changes() {
        let test = CredentialTest {
            provider: "binance".into(),
            user_id: "u1".into(),
            success: true,
            error: None,
            request_id: None,
        };
        assert_eq!(test.key(), "binance:u1", "one entry per provider and user");
        let first = test.to_data(None, "T");
        assert_eq!(first["statusRefreshed"], true);
        assert_eq!(
            first["invalidateQueries"][2],
            json!(["binance-connectivity", "u1"])
        );
        let again = test.to_data(Some(&first), "T2");
        assert_eq!(again["statusRefreshed"], false);
        let failed = CredentialTest {
            success: false,
            error: Some("401".into()),
            ..test
        };
        assert_eq!(failed.to_data(Some(&first), "T3")["statusRefreshed"], true);
    }
}
