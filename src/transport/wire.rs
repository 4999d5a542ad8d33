//! How an event and a snapshot look on each transport's wire, in one place.
//!
//! The hub hands every subscriber the same [`Published`]; the encodings of
//! it (the envelope JSON for SSE, the `/ws` text frame, Socket.IO's `meta`
//! argument) are built here on first use and kept in the event's encoding
//! slot, so each is made once per event and every further subscriber gets a
//! shared copy (a reference-count bump for the `/ws` frame).

use crate::{
    disconnect::{NOTICE_EVENT, Notice},
    event,
    hub::Published,
    store::Snapshot,
};
use axum::{extract::ws::Utf8Bytes, response::sse};
use serde::Serialize;
use serde_json::value::RawValue;
use std::{borrow::Cow, sync::OnceLock};

/// One event's encodings, each built on first use.
#[derive(Default)]
struct Encodings {
    envelope: OnceLock<String>,
    ws_frame: OnceLock<Utf8Bytes>,
    meta: OnceLock<Box<RawValue>>,
}

fn encodings(published: &Published) -> Option<&Encodings> {
    published.encodings::<Encodings>()
}

fn encode_envelope(published: &Published) -> String {
    serde_json::to_string(&published.event).expect("event is plain JSON")
}

// `Published`'s slot only ever holds `Encodings` (this module is its one
// user), so the uncached branches below are never taken; they encode
// afresh rather than fail.

/// The full envelope as JSON (the SSE `data:`).
pub fn envelope(published: &Published) -> Cow<'_, str> {
    match encodings(published) {
        Some(e) => Cow::Borrowed(e.envelope.get_or_init(|| encode_envelope(published))),
        None => Cow::Owned(encode_envelope(published)),
    }
}

/// `{"type":"event", …envelope}`: the envelope with the frame type spliced
/// in front of its fields. Kept as the frame type itself so that each
/// subscriber's copy is a reference-count bump, not an encoding.
pub fn ws_frame(published: &Published) -> Utf8Bytes {
    let build = || {
        let envelope = envelope(published);
        // The envelope is a JSON object with fields: `{` + fields + `}`.
        let fields = envelope.strip_prefix('{').unwrap_or(&envelope);
        Utf8Bytes::from(format!("{{\"type\":\"event\",{fields}"))
    };
    match encodings(published) {
        Some(e) => e.ws_frame.get_or_init(build).clone(),
        None => build(),
    }
}

/// Socket.IO's second listener argument, `{accountId, seq, id, publishedAt}`.
pub fn meta(published: &Published) -> Cow<'_, RawValue> {
    let build =
        || serde_json::value::to_raw_value(&published.event.meta()).expect("meta is plain JSON");
    match encodings(published) {
        Some(e) => Cow::Borrowed(&**e.meta.get_or_init(build)),
        None => Cow::Owned(build()),
    }
}

#[derive(Serialize)]
struct SnapshotFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: &'a Snapshot,
}

/// `{"type":"snapshot","data":{…}}` for `/ws`.
pub fn ws_snapshot(snapshot: &Snapshot) -> serde_json::Result<Utf8Bytes> {
    serde_json::to_string(&SnapshotFrame {
        kind: "snapshot",
        data: snapshot,
    })
    .map(Utf8Bytes::from)
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
}

/// `{"type":"error","code":…,"message":…}` for `/ws`.
pub fn ws_error(code: &str, message: &str) -> serde_json::Result<Utf8Bytes> {
    serde_json::to_string(&ErrorFrame {
        kind: "error",
        code,
        message,
    })
    .map(Utf8Bytes::from)
}

/// `{"type":"pong"}` for `/ws`.
pub const WS_PONG: &str = r#"{"type":"pong"}"#;

/// An event on an SSE stream: `id: {seq}`, `event: {name}`, `data: {envelope}`.
pub fn sse_event(published: &Published) -> sse::Event {
    sse::Event::default()
        .id(published.event.seq.to_string())
        .event(&published.event.event)
        .data(envelope(published))
}

/// The snapshot on an SSE stream, with `id: {snapshot.seq}` (see `sse`'s docs).
pub fn sse_snapshot(snapshot: &Snapshot) -> Result<sse::Event, axum::Error> {
    sse::Event::default()
        .id(snapshot.seq.to_string())
        .event(event::SNAPSHOT)
        .json_data(snapshot)
}

/// The last event of a stream the server ends; it carries no `id`, so the
/// client's resume point stays at the last real event.
pub fn sse_goodbye(notice: Notice) -> sse::Event {
    sse::Event::default()
        .event(NOTICE_EVENT)
        .data(notice.to_json())
}
