//! How events are written into Redis and read back: the stream entry's body,
//! the pub/sub notification, and the loose typing of script replies.
//!
//! One encoding serves the stream and the notification, so a subscriber
//! (cross-node fan-out) decodes exactly what `events_since` decodes.

use crate::event::Event;
use redis::Value;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An event without what the script assigns (seq) or the key implies
/// (account): the stream entry's `b` field and the notification's tail.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    event: &'a str,
    id: &'a str,
    published_at: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

pub fn encode_body(event: &str, id: &str, published_at: &str, data: &RawValue) -> String {
    // Serialising borrowed strings and already-valid JSON cannot fail.
    serde_json::to_string(&Body {
        event,
        id,
        published_at,
        data,
    })
    .unwrap_or_default()
}

/// The event a stored body describes, or `None` when it is not ours.
pub fn decode_body(account_id: &str, seq: u64, body: &str) -> Option<Event> {
    let parsed: Body<'_> = serde_json::from_str(body).ok()?;
    Some(Event {
        event: parsed.event.to_owned(),
        account_id: account_id.to_owned(),
        seq,
        id: parsed.id.to_owned(),
        published_at: parsed.published_at.to_owned(),
        data: parsed.data.to_owned(),
    })
}

/// A committed event as published on the account's channel:
/// `<seq> <epoch> <body>`.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "decoded by the cross-node subscriber (issue 14, fan-out); the format is fixed and tested now"
)]
pub struct Notification {
    pub epoch: String,
    pub event: Event,
}

#[allow(dead_code, reason = "see Notification")]
impl Notification {
    pub fn decode(account_id: &str, message: &str) -> Option<Notification> {
        let (seq, rest) = message.split_once(' ')?;
        let (epoch, body) = rest.split_once(' ')?;
        Some(Notification {
            epoch: epoch.to_owned(),
            event: decode_body(account_id, seq.parse().ok()?, body)?,
        })
    }
}

/// The seq of a stream entry id (`<seq>-0`).
pub fn seq_of_id(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(seq, _)| seq).parse().ok()
}

/// A bulk or simple string reply as text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer reply, or a string holding one.
pub fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

pub fn array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// A flat `[field, value, ...]` reply as pairs of text.
pub fn pairs(value: &Value) -> Option<Vec<(String, String)>> {
    array(value)?
        .chunks(2)
        .map(|pair| match pair {
            [field, value] => Some((text(field)?, text(value)?)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_decodes_to_the_event_it_was_made_from() {
        let data = RawValue::from_string(r#"{"a":[1,2]}"#.into()).unwrap();
        let body = encode_body("x", "evt_1", "2026-01-01T00:00:00Z", &data);
        let note = Notification::decode("acc", &format!("7 e1 {body}")).unwrap();
        assert_eq!(note.epoch, "e1");
        assert_eq!(
            (
                note.event.seq,
                note.event.id.as_str(),
                note.event.data.get()
            ),
            (7, "evt_1", r#"{"a":[1,2]}"#)
        );
        assert!(Notification::decode("acc", "7 e1 not-json").is_none());
        assert_eq!(seq_of_id("42-0"), Some(42));
    }
}
