//! A subscribing client over either transport: Socket.IO (Engine.IO v4 over
//! WebSocket, default namespace) or the contract's raw `/ws`.
//!
//! `connect` returns only once the server has sent the initial snapshot: from
//! then on the client is certainly in its account's room, so a publish made
//! after every client connected must reach every one of them.

use crate::{
    Error,
    net::{Sources, Target},
    protocol::{self, Incoming},
};
use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{self, Message, protocol::WebSocketConfig},
};

/// tungstenite zero-fills its whole read buffer before every read (128 KiB
/// by default): that was a third of the tool's CPU and 128 KiB of touched
/// memory per client. Frames here are small; larger ones grow the buffer.
const READ_BUFFER: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Socket.IO over WebSocket at /socket.io/.
    Socketio,
    /// The raw WebSocket protocol at /ws.
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Socketio => "socketio",
            Transport::Ws => "ws",
        }
    }

    fn path(self, token: &str) -> String {
        match self {
            Transport::Socketio => "/socket.io/?EIO=4&transport=websocket".into(),
            // JWTs are URL-safe base64 and dots: no escaping needed.
            Transport::Ws => format!("/ws?token={token}"),
        }
    }

    fn decode(self, frame: &str) -> Result<Incoming, protocol::ParseError> {
        match self {
            Transport::Socketio => protocol::decode_socketio(frame),
            Transport::Ws => protocol::decode_ws(frame),
        }
    }
}

pub struct Client {
    ws: WebSocketStream<TcpStream>,
    transport: Transport,
    /// The seq of the snapshot received on connect.
    pub snapshot_seq: u64,
}

impl Client {
    /// Connects client number `i` with `token`, returning once its snapshot arrived.
    pub async fn connect(
        i: usize,
        target: &Target,
        sources: &Sources,
        transport: Transport,
        token: &str,
    ) -> Result<Client, Error> {
        let stream = sources.connect(i, target).await?;
        let url = target.ws_url(&transport.path(token));
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let (ws, _) = client_async_with_config(url, stream, Some(config))
            .await
            .map_err(|e| upgrade_error(transport, e))?;
        let mut client = Client {
            ws,
            transport,
            snapshot_seq: 0,
        };
        if transport == Transport::Socketio {
            client
                .expect(|m| matches!(m, Incoming::Open), "Engine.IO open packet")
                .await?;
            let auth = serde_json::json!({ "token": token });
            client.send(format!("40{auth}")).await?;
            client
                .expect(
                    |m| matches!(m, Incoming::Connected),
                    "Socket.IO connect acknowledgement",
                )
                .await?;
        }
        let snapshot = client
            .expect(
                |m| matches!(m, Incoming::Snapshot { .. }),
                "initial snapshot",
            )
            .await?;
        if let Incoming::Snapshot { seq } = snapshot {
            client.snapshot_seq = seq;
        }
        Ok(client)
    }

    /// Waits for a message `wanted` accepts, skipping others; a refusal or close fails.
    async fn expect(
        &mut self,
        wanted: impl Fn(&Incoming) -> bool,
        what: &str,
    ) -> Result<Incoming, Error> {
        loop {
            match self.next().await? {
                m if wanted(&m) => return Ok(m),
                Incoming::Refused(why) => return Err(Error::Refused(why)),
                Incoming::Closed(why) => {
                    return Err(Error::Protocol(format!(
                        "closed while waiting for the {what}: {why}"
                    )));
                }
                _ => {}
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<(), Error> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| Error::Protocol(format!("send failed: {e}")))
    }

    /// The next message, answering Engine.IO pings on the way (they are
    /// still returned, so an idle client can count them).
    pub async fn next(&mut self) -> Result<Incoming, Error> {
        loop {
            let msg = match self.ws.next().await {
                None => return Ok(Incoming::Closed("connection closed".into())),
                Some(Err(e)) => return Ok(Incoming::Closed(format!("connection failed: {e}"))),
                Some(Ok(msg)) => msg,
            };
            let incoming = match msg {
                Message::Text(text) => self
                    .transport
                    .decode(text.as_str())
                    .map_err(|e| Error::Protocol(format!("{e} in frame {:.120}", text.as_str())))?,
                Message::Close(frame) => Incoming::Closed(format!(
                    "close frame {}",
                    frame.map(|f| f.to_string()).unwrap_or_default()
                )),
                // tungstenite answers WebSocket pings by itself.
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                    continue;
                }
            };
            if incoming == Incoming::Ping {
                self.send("3".into()).await?;
            }
            return Ok(incoming);
        }
    }
}

fn upgrade_error(transport: Transport, e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let hint = match (transport, status.as_u16()) {
                (Transport::Ws, 404 | 405) => {
                    ": this server has no raw WebSocket transport at /ws (not in this build?)"
                }
                (_, 401 | 403) => ": the token was refused",
                _ => "",
            };
            Error::Refused(format!(
                "HTTP {status} to the WebSocket upgrade at {}{hint}",
                match transport {
                    Transport::Socketio => "/socket.io/",
                    Transport::Ws => "/ws",
                }
            ))
        }
        e => Error::Connect(format!("WebSocket upgrade failed: {e}")),
    }
}
