//! The frames of both client protocols, decoded into one model.
//!
//! Socket.IO over WebSocket is two nested protocols: an Engine.IO v4 packet
//! (`0` open, `2` ping, `4` message, …) whose message is a Socket.IO packet
//! (`0` connect, `2` event, `4` connect error, …) with an optional namespace
//! and ack id before its JSON. The raw `/ws` protocol is one JSON object per
//! text frame. Decoding is on the hot path of a run (one call per delivery),
//! so it borrows from the frame and reads only the fields the tool needs.

use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, SeqAccess, Visitor},
};
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty frame")]
    Empty,
    #[error("unknown {layer} packet type {kind:?}")]
    UnknownType { layer: &'static str, kind: char },
    #[error("malformed packet: {0}")]
    Malformed(String),
}

fn malformed(e: impl fmt::Display) -> ParseError {
    ParseError::Malformed(e.to_string())
}

/// An Engine.IO v4 packet carried in one WebSocket text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Eio<'a> {
    /// `0{"sid",…}`: the handshake.
    Open(&'a str),
    Close,
    Ping,
    Pong,
    /// `4…`: a Socket.IO packet.
    Message(&'a str),
    Upgrade,
    Noop,
}

pub fn parse_eio(frame: &str) -> Result<Eio<'_>, ParseError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(ParseError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => Eio::Open(rest),
        '1' => Eio::Close,
        '2' => Eio::Ping,
        '3' => Eio::Pong,
        '4' => Eio::Message(rest),
        '5' => Eio::Upgrade,
        '6' => Eio::Noop,
        kind => {
            return Err(ParseError::UnknownType {
                layer: "Engine.IO",
                kind,
            });
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SioKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A Socket.IO packet: `<type>[<attachments>-][/<nsp>,][<ack id>][<json>]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Sio<'a> {
    pub kind: SioKind,
    pub nsp: &'a str,
    pub ack: Option<u64>,
    pub data: &'a str,
}

pub fn parse_sio(packet: &str) -> Result<Sio<'_>, ParseError> {
    let mut chars = packet.chars();
    let kind = match chars.next().ok_or(ParseError::Empty)? {
        '0' => SioKind::Connect,
        '1' => SioKind::Disconnect,
        '2' => SioKind::Event,
        '3' => SioKind::Ack,
        '4' => SioKind::ConnectError,
        '5' => SioKind::BinaryEvent,
        '6' => SioKind::BinaryAck,
        kind => {
            return Err(ParseError::UnknownType {
                layer: "Socket.IO",
                kind,
            });
        }
    };
    let mut rest = chars.as_str();
    if matches!(kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
        let (count, after) = rest
            .split_once('-')
            .ok_or_else(|| malformed("binary packet without attachment count"))?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("bad attachment count"));
        }
        rest = after;
    }
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = match digits {
        0 => None,
        _ => Some(rest[..digits].parse().map_err(malformed)?),
    };
    Ok(Sio {
        kind,
        nsp,
        ack,
        data: &rest[digits..],
    })
}

/// The fields of an event's data (or a snapshot) the tool reads; the rest is skipped.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Probe {
    /// The publisher's number of this event within its account.
    pub n: Option<u64>,
    /// Send time, µs on the tool's clock.
    pub t: Option<u64>,
    /// A snapshot's seq.
    pub seq: Option<u64>,
}

#[derive(Deserialize)]
struct MetaProbe {
    seq: Option<u64>,
}

/// `["name", data, meta?]`: a Socket.IO event's arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct EventArgs<'a> {
    pub name: &'a str,
    pub data: Probe,
    pub meta_seq: Option<u64>,
}

impl<'de: 'a, 'a> Deserialize<'de> for EventArgs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Args;
        impl<'de> Visitor<'de> for Args {
            type Value = EventArgs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array [name, data, meta?]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let name: &str = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let data: Probe = seq.next_element()?.unwrap_or_default();
                let meta: Option<MetaProbe> = seq.next_element()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EventArgs {
                    name,
                    data,
                    meta_seq: meta.and_then(|m| m.seq),
                })
            }
        }
        d.deserialize_seq(Args)
    }
}

/// What a client was told, whatever the transport.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Engine.IO's handshake; carries nothing the tool needs.
    Open,
    /// Socket.IO's connect acknowledgement.
    Connected,
    /// The initial state; events after `seq` follow.
    Snapshot { seq: u64 },
    Event {
        seq: Option<u64>,
        n: Option<u64>,
        t: Option<u64>,
    },
    /// An Engine.IO ping the client must answer.
    Ping,
    /// The server refused the connection.
    Refused(String),
    /// The server ended the connection.
    Closed(String),
    /// Anything the tool has no use for.
    Other,
}

/// Decodes one text frame of Socket.IO over WebSocket (default namespace).
pub fn decode_socketio(frame: &str) -> Result<Incoming, ParseError> {
    let packet = match parse_eio(frame)? {
        Eio::Open(_) => return Ok(Incoming::Open),
        Eio::Ping => return Ok(Incoming::Ping),
        Eio::Close => return Ok(Incoming::Closed("Engine.IO close packet".into())),
        Eio::Message(packet) => parse_sio(packet)?,
        Eio::Pong | Eio::Upgrade | Eio::Noop => return Ok(Incoming::Other),
    };
    if packet.nsp != "/" {
        return Ok(Incoming::Other);
    }
    Ok(match packet.kind {
        SioKind::Connect => Incoming::Connected,
        SioKind::ConnectError => Incoming::Refused(connect_error_message(packet.data)),
        SioKind::Disconnect => Incoming::Closed("Socket.IO disconnect packet".into()),
        SioKind::Event => event(serde_json::from_str(packet.data).map_err(malformed)?),
        SioKind::Ack | SioKind::BinaryEvent | SioKind::BinaryAck => Incoming::Other,
    })
}

fn event(args: EventArgs<'_>) -> Incoming {
    match args.name {
        "snapshot" => Incoming::Snapshot {
            seq: args.data.seq.unwrap_or(0),
        },
        "statushub:disconnect" => Incoming::Closed("statushub:disconnect event".into()),
        _ => Incoming::Event {
            seq: args.meta_seq,
            n: args.data.n,
            t: args.data.t,
        },
    }
}

/// `44{"message": …}` (Socket.IO 4) or a bare string.
fn connect_error_message(data: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorData {
        message: String,
    }
    serde_json::from_str::<ErrorData>(data)
        .map(|e| e.message)
        .or_else(|_| serde_json::from_str::<String>(data))
        .unwrap_or_else(|_| data.to_owned())
}

#[derive(Deserialize)]
struct WsFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<u64>,
    #[serde(default)]
    data: Probe,
    code: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

/// Decodes one text frame of the raw `/ws` protocol.
pub fn decode_ws(frame: &str) -> Result<Incoming, ParseError> {
    let f: WsFrame = serde_json::from_str(frame).map_err(malformed)?;
    Ok(match f.kind {
        "event" => Incoming::Event {
            seq: f.seq,
            n: f.data.n,
            t: f.data.t,
        },
        "snapshot" => Incoming::Snapshot {
            seq: f.data.seq.unwrap_or(0),
        },
        "error" => Incoming::Refused(format!(
            "{}: {}",
            f.code.as_deref().unwrap_or("error"),
            f.message.as_deref().unwrap_or("")
        )),
        "disconnect" | "close" => Incoming::Closed(
            f.reason
                .or(f.code)
                .unwrap_or_else(|| "server closed".into()),
        ),
        _ => Incoming::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_io_packet_types() {
        assert_eq!(
            parse_eio(r#"0{"sid":"x"}"#),
            Ok(Eio::Open(r#"{"sid":"x"}"#))
        );
        assert_eq!(parse_eio("2"), Ok(Eio::Ping));
        assert_eq!(parse_eio("3"), Ok(Eio::Pong));
        assert_eq!(parse_eio("40"), Ok(Eio::Message("0")));
        assert_eq!(parse_eio("6"), Ok(Eio::Noop));
        assert_eq!(parse_eio(""), Err(ParseError::Empty));
        assert!(matches!(
            parse_eio("9"),
            Err(ParseError::UnknownType { kind: '9', .. })
        ));
    }

    #[test]
    fn socket_io_packet_parts() {
        let p = parse_sio(r#"0{"sid":"abc"}"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.ack, p.data),
            (SioKind::Connect, "/", None, r#"{"sid":"abc"}"#)
        );

        let p = parse_sio(r#"2/admin,13["x",1]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.ack, p.data),
            (SioKind::Event, "/admin", Some(13), r#"["x",1]"#)
        );

        let p = parse_sio(r#"51-["up",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(p.kind, SioKind::BinaryEvent);
        assert_eq!(p.data, r#"["up",{"_placeholder":true,"num":0}]"#);

        let p = parse_sio("1").unwrap();
        assert_eq!((p.kind, p.data), (SioKind::Disconnect, ""));

        assert!(parse_sio("5-[]").is_err(), "attachment count missing");
        assert!(parse_sio("7").is_err());
    }

    #[test]
    fn socket_io_events_decode() {
        let frame = r#"42["bench.tick",{"n":7,"t":1234,"pad":"xx"},{"accountId":"a","seq":8,"id":"e1","publishedAt":"2025-01-01T00:00:00Z"}]"#;
        assert_eq!(
            decode_socketio(frame),
            Ok(Incoming::Event {
                seq: Some(8),
                n: Some(7),
                t: Some(1234)
            })
        );
        let snapshot =
            r#"42["snapshot",{"accountId":"a","seq":41,"phones":{"p":{"seq":3}},"monitors":{}}]"#;
        assert_eq!(
            decode_socketio(snapshot),
            Ok(Incoming::Snapshot { seq: 41 })
        );
        assert_eq!(decode_socketio(r#"40{"sid":"s"}"#), Ok(Incoming::Connected));
        assert_eq!(decode_socketio("2"), Ok(Incoming::Ping));
        assert!(matches!(
            decode_socketio(r#"0{"sid":"s","pingInterval":25000}"#),
            Ok(Incoming::Open)
        ));
        assert!(matches!(
            decode_socketio(r#"42["statushub:disconnect",{"reason":"slow_consumer"}]"#),
            Ok(Incoming::Closed(_))
        ));
        // Events of another namespace are not ours.
        assert_eq!(decode_socketio(r#"42/other,["x",{}]"#), Ok(Incoming::Other));
        assert!(decode_socketio(r#"42["x",{"n":"#).is_err());
    }

    #[test]
    fn connect_errors_carry_the_message() {
        assert_eq!(
            decode_socketio(r#"44{"message":"unauthorized: token expired"}"#),
            Ok(Incoming::Refused("unauthorized: token expired".into()))
        );
        assert_eq!(
            decode_socketio(r#"44"nope""#),
            Ok(Incoming::Refused("nope".into()))
        );
    }

    #[test]
    fn event_with_extra_arguments_or_no_meta() {
        let args: EventArgs =
            serde_json::from_str(r#"["e",{"n":1},{"seq":2},"extra",[1]]"#).unwrap();
        assert_eq!(
            (args.name, args.data.n, args.meta_seq),
            ("e", Some(1), Some(2))
        );
        let args: EventArgs = serde_json::from_str(r#"["e"]"#).unwrap();
        assert_eq!((args.data, args.meta_seq), (Probe::default(), None));
        assert!(serde_json::from_str::<EventArgs>("[]").is_err());
    }

    #[test]
    fn raw_ws_frames_decode() {
        let frame = r#"{"type":"event","event":"bench.tick","accountId":"a","seq":5,"id":"x","publishedAt":"t","data":{"n":4,"t":99}}"#;
        assert_eq!(
            decode_ws(frame),
            Ok(Incoming::Event {
                seq: Some(5),
                n: Some(4),
                t: Some(99)
            })
        );
        assert_eq!(
            decode_ws(r#"{"type":"snapshot","data":{"accountId":"a","seq":12,"phones":{}}}"#),
            Ok(Incoming::Snapshot { seq: 12 })
        );
        assert_eq!(
            decode_ws(r#"{"type":"error","code":"unauthorized","message":"bad token"}"#),
            Ok(Incoming::Refused("unauthorized: bad token".into()))
        );
        assert_eq!(decode_ws(r#"{"type":"pong"}"#), Ok(Incoming::Other));
        assert!(decode_ws("not json").is_err());
    }
}
