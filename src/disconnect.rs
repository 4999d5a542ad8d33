//! Every way a client connection ends, in one list (as centrifuge's
//! `disconnect.go` does): the stable word metrics, logs and clients see, the
//! WebSocket close code and reason text, whether the client should come back,
//! and the notice Socket.IO and SSE clients get before the server ends their
//! session. Transports and the hub use these constants and never spell a word
//! or a code themselves; the browser SDK mirrors the words in
//! `web-client/src/disconnect.ts` (a test below keeps the two in step).
//!
//! Ends fall in three groups:
//! - the server ends the connection and the client **should reconnect**
//!   (with `since`, to resume exactly): [`Disconnect::RECONNECTING`];
//! - the server ends it and reconnecting as-is would fail again (a client
//!   bug or bad credentials): [`Disconnect::TERMINAL`];
//! - the peer went away ([`CLIENT_CLOSED`], [`TRANSPORT_ERROR`], …): there is
//!   nobody left to tell.
//!
//! The WebSocket close codes:
//!
//! | code | word | when | reconnect |
//! |---|---|---|---|
//! | 1002 | `transport_error` | a frame breaking RFC 6455 (unmasked, reserved opcode or bits, bad control frame) | no |
//! | 1007 | `transport_error` | a text frame that is not UTF-8 | no |
//! | 1008 | `bad_request` | too many malformed frames | no |
//! | 1009 | `too_large` | a frame over `--max-message-bytes` | no |
//! | 1011 | `store_unavailable` | the store failed while replaying the gap | yes |
//! | 1012 | `shutdown` | the server is restarting | yes |
//! | 4001 | `unauthorized` | missing, invalid or expired token | no |
//! | 4008 | `auth_timeout` | no `auth` frame within `--auth-timeout` | no |
//! | 4009 | `slow_consumer` | the outgoing queue overflowed | yes |
//! | 4010 | `ping_timeout` | no pong within `--ping-timeout` of a ping | yes |
//!
//! Connections refused before they are served (admission control, bad
//! credentials) are counted under the words in [`refused`].

use serde::Serialize;

/// The Socket.IO event and SSE `event:` sent just before the server ends a
/// session: `{"reason": word, "reconnect": bool}`.
pub const NOTICE_EVENT: &str = "statushub:disconnect";

/// The peer closed the connection (the default reason).
pub const CLIENT_CLOSED: &str = "client_closed";
/// The connection broke under the transport (reset, protocol error).
pub const TRANSPORT_ERROR: &str = "transport_error";
/// The hub found the connection already gone.
pub const GONE: &str = "gone";
/// Socket.IO: the server disconnected the namespace for another reason.
pub const SERVER_DISCONNECT: &str = "server_disconnect";

/// A connection the server ends: how each transport says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The stable word (metrics, logs, error frames, notices).
    pub word: &'static str,
    /// The raw WebSocket close code.
    pub ws_code: u16,
    /// The WebSocket close frame's reason (at most 123 bytes).
    pub ws_text: &'static str,
    /// Whether the client should reconnect (resuming with `since`).
    pub reconnect: bool,
}

impl Disconnect {
    // --- The client should reconnect. ---

    /// Its outgoing queue overflowed; it resumes from its last seq.
    pub const SLOW: Disconnect = Disconnect {
        word: "slow_consumer",
        ws_code: 4009,
        ws_text: "slow_consumer: reconnect with since",
        reconnect: true,
    };
    /// The store failed while replaying the connection's gap.
    pub const STORE_UNAVAILABLE: Disconnect = Disconnect {
        word: "store_unavailable",
        ws_code: 1011,
        ws_text: "store_unavailable: reconnect with since",
        reconnect: true,
    };
    /// The server is shutting down or restarting.
    pub const SHUTDOWN: Disconnect = Disconnect {
        word: "shutdown",
        ws_code: 1012,
        ws_text: "service restart: reconnect with since",
        reconnect: true,
    };
    /// No pong within the ping timeout: the path to the peer is likely dead.
    pub const PING_TIMEOUT: Disconnect = Disconnect {
        word: "ping_timeout",
        ws_code: 4010,
        ws_text: "ping_timeout: no pong in time",
        reconnect: true,
    };

    // --- Reconnecting as-is would fail again. ---

    /// Too many malformed frames.
    pub const BAD_REQUEST: Disconnect = Disconnect {
        word: "bad_request",
        ws_code: 1008,
        ws_text: "bad_request: too many malformed frames",
        reconnect: false,
    };
    /// A frame over `--max-message-bytes`.
    pub const TOO_LARGE: Disconnect = Disconnect {
        word: "too_large",
        ws_code: 1009,
        ws_text: "too_large: frame exceeds the message size limit",
        reconnect: false,
    };
    /// A missing, invalid or expired token.
    pub const UNAUTHORIZED: Disconnect = Disconnect {
        word: "unauthorized",
        ws_code: 4001,
        ws_text: "unauthorized",
        reconnect: false,
    };
    /// No `auth` frame within `--auth-timeout`.
    pub const AUTH_TIMEOUT: Disconnect = Disconnect {
        word: "auth_timeout",
        ws_code: 4008,
        ws_text: "auth_timeout: send an auth frame first",
        reconnect: false,
    };

    // --- The peer broke the WebSocket protocol (RFC 6455 section 7.4.1);
    // counted as a transport error, as the frame never reached the hub. ---

    /// An unmasked client frame, a reserved opcode or bit, a bad control frame.
    pub const PROTOCOL_ERROR: Disconnect = Disconnect {
        word: TRANSPORT_ERROR,
        ws_code: 1002,
        ws_text: "protocol_error: invalid WebSocket frame",
        reconnect: false,
    };
    /// A text frame (or close reason) that is not UTF-8.
    pub const INVALID_PAYLOAD: Disconnect = Disconnect {
        word: TRANSPORT_ERROR,
        ws_code: 1007,
        ws_text: "invalid_payload: text frames must be UTF-8",
        reconnect: false,
    };

    pub const PROTOCOL: [Disconnect; 2] = [Disconnect::PROTOCOL_ERROR, Disconnect::INVALID_PAYLOAD];

    pub const RECONNECTING: [Disconnect; 4] = [
        Disconnect::SLOW,
        Disconnect::STORE_UNAVAILABLE,
        Disconnect::SHUTDOWN,
        Disconnect::PING_TIMEOUT,
    ];
    pub const TERMINAL: [Disconnect; 4] = [
        Disconnect::BAD_REQUEST,
        Disconnect::TOO_LARGE,
        Disconnect::UNAUTHORIZED,
        Disconnect::AUTH_TIMEOUT,
    ];

    /// The [`NOTICE_EVENT`] payload.
    pub fn notice(self) -> Notice {
        Notice {
            reason: self.word,
            reconnect: self.reconnect,
        }
    }
}

/// `{"reason": …, "reconnect": …}`, the payload of [`NOTICE_EVENT`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Notice {
    pub reason: &'static str,
    pub reconnect: bool,
}

impl Notice {
    pub fn to_json(self) -> String {
        format!(
            "{{\"reason\":\"{}\",\"reconnect\":{}}}",
            self.reason, self.reconnect
        )
    }
}

/// Why the hub ends a subscriber's connection (see [`crate::hub::Hub::disconnect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Its outgoing queue overflowed; it should reconnect with `since`.
    Slow,
    /// The store failed while replaying its gap.
    Unavailable,
    /// The server is shutting down; reconnect elsewhere or later.
    Shutdown,
    /// The peer went away.
    Gone,
}

impl DisconnectReason {
    /// The stable word clients and metrics see.
    pub fn code(self) -> &'static str {
        self.server_close().map_or(GONE, |d| d.word)
    }

    /// What the server tells the peer; `None` when the peer is already gone.
    pub fn server_close(self) -> Option<Disconnect> {
        match self {
            DisconnectReason::Slow => Some(Disconnect::SLOW),
            DisconnectReason::Unavailable => Some(Disconnect::STORE_UNAVAILABLE),
            DisconnectReason::Shutdown => Some(Disconnect::SHUTDOWN),
            DisconnectReason::Gone => None,
        }
    }
}

/// Words for connections turned away before they were served.
pub mod refused {
    /// The node is at `--max-connections`.
    pub const OVER_CAPACITY: &str = "over_capacity";
    /// The address is at `--max-connections-per-ip`.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// The server is shutting down.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// Missing or bad credentials.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The `Origin` is not allowed.
    pub const ORIGIN: &str = "origin";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_codes_are_unique() {
        let all: Vec<Disconnect> = Disconnect::RECONNECTING
            .into_iter()
            .chain(Disconnect::TERMINAL)
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert!(a.ws_text.len() <= 123, "{}", a.word);
            for b in &all[i + 1..] {
                assert_ne!(a.word, b.word);
                assert_ne!(a.ws_code, b.ws_code);
            }
        }
        for p in Disconnect::PROTOCOL {
            assert!(p.ws_text.len() <= 123, "{}", p.ws_code);
            assert!(!p.reconnect);
            let others = all.iter().chain(Disconnect::PROTOCOL.iter());
            assert_eq!(others.filter(|o| o.ws_code == p.ws_code).count(), 1);
        }
    }

    #[test]
    fn notice_is_the_documented_json() {
        let notice = Disconnect::SHUTDOWN.notice();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&notice.to_json()).unwrap(),
            serde_json::json!({ "reason": "shutdown", "reconnect": true })
        );
        assert_eq!(
            serde_json::to_value(notice).unwrap(),
            serde_json::json!({ "reason": "shutdown", "reconnect": true })
        );
    }

    /// The SDK's copy names the same event and words.
    #[test]
    fn the_sdk_lists_the_same_words() {
        let sdk = include_str!("../web-client/src/disconnect.ts");
        assert!(sdk.contains(&format!("'{NOTICE_EVENT}'")), "notice event");
        for d in Disconnect::RECONNECTING
            .into_iter()
            .chain(Disconnect::TERMINAL)
        {
            assert!(sdk.contains(&format!("'{}'", d.word)), "{}", d.word);
        }
        for word in [CLIENT_CLOSED, TRANSPORT_ERROR, GONE, SERVER_DISCONNECT] {
            assert!(sdk.contains(&format!("'{word}'")), "{word}");
        }
    }
}
