//! How events, snapshots and `/ws` frames look on each transport's wire, in
//! one place.
//!
//! The hub hands every subscriber the same [`Published`]; the encodings of
//! it (the envelope JSON for SSE, the `/ws` frame, Socket.IO's `meta`
//! argument) are built here on first use and kept in the event's encoding
//! slot, so each is made once per event and every further subscriber gets a
//! shared copy (a reference-count bump for the `/ws` frame).
//!
//! A `/ws` frame is kept whole, header included: frames a server sends are
//! not masked (RFC 6455 §5.1), so the bytes of an event's frame are the same
//! for every subscriber and go to each socket as they are.

use crate::{
    disconnect::{NOTICE_EVENT, Notice},
    event,
    hub::Published,
    store::Snapshot,
};
use axum::response::sse;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::{borrow::Cow, sync::OnceLock};

/// One event's encodings, each built on first use.
#[derive(Default)]
struct Encodings {
    envelope: OnceLock<String>,
    ws_frame: OnceLock<Bytes>,
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

/// The `/ws` frame of `{"type":"event", …envelope}`: the envelope with the
/// frame type spliced in front of its fields, framed once, so that each
/// subscriber's copy is a reference-count bump, not an encoding.
pub fn ws_frame(published: &Published) -> Bytes {
    let build = || {
        let envelope = envelope(published);
        // The envelope is a JSON object with fields: `{` + fields + `}`.
        let fields = envelope.strip_prefix('{').unwrap_or(&envelope);
        ws_text_frame(&[b"{\"type\":\"event\",", fields.as_bytes()])
    };
    match encodings(published) {
        Some(e) => e.ws_frame.get_or_init(build).clone(),
        None => build(),
    }
}

/// WebSocket opcodes a server frame may carry (RFC 6455 §5.2).
#[derive(Clone, Copy)]
pub enum WsOpcode {
    Text = 0x1,
    Ping = 0x9,
}

/// One unmasked, final WebSocket frame whose payload is `parts` joined.
pub fn ws_server_frame(opcode: WsOpcode, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut frame = BytesMut::with_capacity(len + 10);
    frame.put_u8(0x80 | opcode as u8);
    match len {
        0..=125 => frame.put_u8(len as u8),
        126..=0xffff => {
            frame.put_u8(126);
            frame.put_u16(len as u16);
        }
        _ => {
            frame.put_u8(127);
            frame.put_u64(len as u64);
        }
    }
    for part in parts {
        frame.put_slice(part);
    }
    frame.freeze()
}

/// A text frame of `parts` joined.
pub fn ws_text_frame(parts: &[&[u8]]) -> Bytes {
    ws_server_frame(WsOpcode::Text, parts)
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

/// The `/ws` frame of `{"type":"snapshot","data":{…}}`.
pub fn ws_snapshot(snapshot: &Snapshot) -> serde_json::Result<Bytes> {
    let json = serde_json::to_vec(&SnapshotFrame {
        kind: "snapshot",
        data: snapshot,
    })?;
    Ok(ws_text_frame(&[&json]))
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
}

/// The `/ws` frame of `{"type":"error","code":…,"message":…}`.
pub fn ws_error(code: &str, message: &str) -> serde_json::Result<Bytes> {
    let json = serde_json::to_vec(&ErrorFrame {
        kind: "error",
        code,
        message,
    })?;
    Ok(ws_text_frame(&[&json]))
}

/// A field of a client frame kept as raw JSON for the subscribe path to judge.
pub type Raw<'a> = Option<&'a RawValue>;

/// A `/ws` client frame, decoded as far as its type needs. `since` stays
/// raw for the one subscribe path to judge (a `1e400` is a bad `since`, not
/// a malformed frame).
pub enum WsClientFrame<'a> {
    Auth {
        token: String,
        since: Option<&'a RawValue>,
        epoch: Option<&'a RawValue>,
        filter: Option<&'a RawValue>,
    },
    Subscribe {
        account_id: String,
        since: Option<&'a RawValue>,
        epoch: Option<&'a RawValue>,
        filter: Option<&'a RawValue>,
    },
    Ping,
}

/// `{"type": "auth" | "subscribe" | "ping", …}`; fields a type does not use are ignored.
#[derive(Deserialize)]
struct RawClientFrame<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    token: Option<&'a RawValue>,
    #[serde(borrow, rename = "accountId")]
    account_id: Option<&'a RawValue>,
    #[serde(borrow)]
    since: Option<&'a RawValue>,
    #[serde(borrow)]
    epoch: Option<&'a RawValue>,
    #[serde(borrow)]
    filter: Option<&'a RawValue>,
}

const EXPECTED_FRAME: &str = r#"expected {"type": "auth" | "subscribe" | "ping", …}"#;

/// Decodes a `/ws` client frame; the error is the message for the client.
pub fn ws_client_frame(text: &str) -> Result<WsClientFrame<'_>, String> {
    let frame: RawClientFrame =
        serde_json::from_str(text).map_err(|e| format!("{EXPECTED_FRAME} as JSON: {e}"))?;
    let string = |raw: Option<&RawValue>, name: &str| {
        raw.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .ok_or_else(|| format!("a {} frame needs {name} as a string", frame.kind))
    };
    match frame.kind.as_str() {
        "ping" => Ok(WsClientFrame::Ping),
        "auth" => Ok(WsClientFrame::Auth {
            token: string(frame.token, "token")?,
            since: frame.since,
            epoch: frame.epoch,
            filter: frame.filter,
        }),
        "subscribe" => Ok(WsClientFrame::Subscribe {
            account_id: string(frame.account_id, "accountId")?,
            since: frame.since,
            epoch: frame.epoch,
            filter: frame.filter,
        }),
        other => Err(format!("{EXPECTED_FRAME}: unknown type {other:?}")),
    }
}

/// The `/ws` frame of `{"type":"pong"}`.
pub fn ws_pong() -> Bytes {
    ws_text_frame(&[br#"{"type":"pong"}"#])
}

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
