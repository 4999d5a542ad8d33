//! One `/ws` connection's task: reads and answers client frames, pings the
//! peer, watches for shutdown, and says goodbye when an [`Ending`] is
//! recorded.
//!
//! tungstenite decodes the client's frames (masking, fragments, UTF-8, size
//! limits, the close handshake) through [`WebSocketContext`], which reads
//! from the socket without waiting: a `WouldBlock` sends the task back to its
//! `select!` until the socket is readable. What tungstenite itself writes
//! (its pong and close replies) goes through the connection's [`Out`], behind
//! the frames already queued there, so frames never interleave.

use super::{
    CLOSE_GRACE, Credential, Ending, MAX_BAD_FRAMES, READ_BUFFER,
    out::{Out, Writer},
    sends_queued_frames,
};
use crate::{
    admission::Permit,
    auth::{AuthError, Claims},
    disconnect::{self, Disconnect, DisconnectReason},
    hub::{Outbound, Sink, SinkError, Transport},
    subscribe::{self, Start, SubscribeError, SubscribeRequest, Subscriptions},
    transport::{
        Context, next_connection_id,
        wire::{self, Raw, WsClientFrame, WsOpcode},
    },
};
use bytes::Bytes;
use std::{
    fmt::Display,
    io::{self, Read, Write},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{net::TcpStream, sync::watch};
use tungstenite::{
    Message,
    error::{Error as WsError, ProtocolError},
    protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext, frame::coding::CloseCode},
};

/// Client frames handled before the task lets others run: a peer sending
/// a flood is read in turns, not in one go.
const FRAMES_PER_TURN: usize = 64;

/// The connection's outgoing side as the hub and the reader see it: the
/// write-through [`Out`] and the ending signal.
struct Outbox {
    out: Arc<Out>,
    ending: watch::Sender<Option<Ending>>,
}

impl Outbox {
    fn end(&self, ending: Ending) {
        self.ending.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(ending);
            }
            first
        });
    }

    /// Best effort: a connection that broke hears nothing more.
    fn send(&self, frame: Bytes) {
        let _ = self.out.send(frame);
    }

    fn error(&self, code: &str, message: impl Display) {
        if let Ok(frame) = wire::ws_error(code, &message.to_string()) {
            self.send(frame);
        }
    }
}

impl Sink for Outbox {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        let frame = match msg {
            Outbound::Event(published) => wire::ws_frame(published),
            Outbound::Snapshot(snapshot) => {
                wire::ws_snapshot(snapshot).map_err(|_| SinkError::Closed)?
            }
        };
        self.out.push(frame)
    }

    fn flush(&self) {
        self.out.flush();
    }

    fn close(&self, reason: DisconnectReason) {
        self.end(Ending::from_hub(reason));
    }

    fn transport(&self) -> Transport {
        Transport::WebSocket
    }
}

/// The socket as tungstenite sees it: reads never wait, writes queue behind
/// the connection's frames and go out at once.
struct Wire<'a> {
    tcp: &'a TcpStream,
    out: &'a Arc<Out>,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.try_read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.send(Bytes::copy_from_slice(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a connection went, for its close log line, and its socket, for the
/// lingering close.
pub(super) struct Ended {
    pub ending: Ending,
    pub account: Option<String>,
    pub lasted: Duration,
    pub tcp: Arc<TcpStream>,
}

pub(super) struct Connection {
    ctx: Context,
    id: u64,
    opened: Instant,
    tcp: Arc<TcpStream>,
    ws: WebSocketContext,
    outbox: Arc<Outbox>,
    ending: watch::Receiver<Option<Ending>>,
    claims: Option<Claims>,
    subs: Subscriptions,
    bad_frames: u32,
    awaiting_pong: bool,
    /// False once a read failed: the rest of the stream is not to be read.
    readable: bool,
}

impl Connection {
    pub(super) fn new(
        ctx: Context,
        tcp: TcpStream,
        read: Bytes,
        writer: &Arc<Writer>,
        permit: &Permit,
    ) -> Box<Connection> {
        let id = next_connection_id();
        let max = ctx.limits.max_message_bytes;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let tcp = Arc::new(tcp);
        let out = Out::new(tcp.clone(), ctx.limits.queue_size, writer.clone());
        let (ending, ending_rx) = watch::channel(None);
        // Boxed: moved through the upgrade task's futures, an inline
        // connection would take room in each of them.
        Box::new(Connection {
            subs: Subscriptions::of(format!("ws-{id}"), permit.opened_at().to_owned()),
            ctx,
            id,
            opened: Instant::now(),
            tcp,
            ws: WebSocketContext::from_partially_read(read.to_vec(), Role::Server, Some(config)),
            outbox: Arc::new(Outbox { out, ending }),
            ending: ending_rx,
            claims: None,
            bad_frames: 0,
            awaiting_pong: false,
            readable: true,
        })
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Serves the connection until an ending is recorded, then says goodbye.
    pub(super) async fn run(mut self: Box<Self>) -> Ended {
        self.serve().await;
        // Nothing more is offered to this connection from here on.
        self.subs.release(&self.ctx.hub);
        let ending = (*self.ending.borrow()).unwrap_or(Ending::Peer(disconnect::CLIENT_CLOSED));
        let _ = tokio::time::timeout(CLOSE_GRACE, self.goodbye(ending)).await;
        self.outbox.out.close();
        Ended {
            ending,
            account: self.claims.map(|c| c.account_id),
            lasted: self.opened.elapsed(),
            tcp: self.tcp,
        }
    }

    async fn serve(&mut self) {
        // Copied out, not the whole `Limits`: this future lives as long as the connection.
        let (auth_timeout, ping_interval, ping_timeout) = {
            let limits = &self.ctx.limits;
            (
                limits.auth_timeout,
                limits.ping_interval,
                limits.ping_timeout,
            )
        };
        let auth_deadline = tokio::time::sleep(auth_timeout);
        let pong_deadline = tokio::time::sleep(ping_timeout);
        let shutdown = self.ctx.shutdown.clone().cancelled_owned();
        tokio::pin!(auth_deadline, pong_deadline, shutdown);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ending = self.ending.clone();
        loop {
            // Frames already buffered (or sent with the upgrade) come first.
            if self.readable {
                self.read_frames();
            }
            let tcp = self.tcp.clone();
            tokio::select! {
                biased;
                _ = ending.wait_for(Option::is_some) => break,
                () = &mut shutdown => self.outbox.end(Ending::Server(Disconnect::SHUTDOWN)),
                () = &mut auth_deadline, if self.claims.is_none() => {
                    self.outbox.error(Disconnect::UNAUTHORIZED.word, format!(
                        "no auth frame within {auth_timeout:?}"));
                    self.outbox.end(Ending::Server(Disconnect::AUTH_TIMEOUT));
                }
                () = &mut pong_deadline, if self.awaiting_pong => {
                    self.outbox.end(Ending::Server(Disconnect::PING_TIMEOUT));
                }
                _ = ping.tick(), if !self.awaiting_pong => {
                    self.outbox.send(wire::ws_server_frame(WsOpcode::Ping, &[]));
                    self.awaiting_pong = true;
                    pong_deadline.as_mut().reset(tokio::time::Instant::now() + ping_timeout);
                }
                readable = readable(&tcp), if self.readable => if readable.is_err() {
                    self.outbox.end(Ending::Peer(disconnect::TRANSPORT_ERROR));
                },
            }
        }
    }

    /// Handles the client frames that can be read without waiting, up to a
    /// turn's worth.
    fn read_frames(&mut self) {
        for _ in 0..FRAMES_PER_TURN {
            if self.ending.borrow().is_some() {
                return;
            }
            let read = self.ws.read(&mut Wire {
                tcp: &self.tcp,
                out: &self.outbox.out,
            });
            match read {
                Ok(Message::Text(text)) => self.on_text(&text),
                Ok(Message::Binary(_)) => {
                    self.bad_frame("bad_request", "frames must be JSON text, not binary");
                }
                Ok(Message::Pong(_)) => self.awaiting_pong = false,
                // tungstenite answers pings itself.
                Ok(Message::Ping(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => self.outbox.end(Ending::Peer(disconnect::CLIENT_CLOSED)),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.read_failed(&e),
            }
        }
    }

    /// tungstenite stops after any read error (and the rest of an oversized
    /// frame is unread: reading on would buffer it), so the reader stops too.
    fn read_failed(&mut self, e: &WsError) {
        self.readable = false;
        tracing::debug!(connection = self.id, error = %e, "websocket read failed");
        match read_failure(e) {
            ReadFailure::TooLarge => {
                self.outbox.error(
                    "too_large",
                    format!(
                        "frames are limited to {} bytes",
                        self.ctx.limits.max_message_bytes
                    ),
                );
                self.outbox.end(Ending::Server(Disconnect::TOO_LARGE));
            }
            ReadFailure::Protocol(close) => self.outbox.end(Ending::Server(close)),
            ReadFailure::Transport => self.outbox.end(Ending::Peer(disconnect::TRANSPORT_ERROR)),
        }
    }

    /// The close handshake: the server's close frame (after the queued
    /// frames, unless the peer was too slow for them) and the peer's reply,
    /// or the reply to the peer's close.
    async fn goodbye(&mut self, ending: Ending) {
        let out = self.outbox.out.clone();
        let mut wire = Wire {
            tcp: &self.tcp,
            out: &out,
        };
        match ending {
            Ending::Server(close) => {
                out.seal(!sends_queued_frames(close));
                let frame = CloseFrame {
                    code: CloseCode::from(close.ws_code),
                    reason: close.ws_text.into(),
                };
                let _ = self.ws.close(&mut wire, Some(frame));
                out.drained().await;
                // The peer's close reply, so the socket closes cleanly
                // instead of being reset with unread data.
                while self.readable {
                    match self.ws.read(&mut wire) {
                        Ok(Message::Close(_)) => break,
                        Ok(_) => {}
                        Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                            if readable(&self.tcp).await.is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            // Sends tungstenite's reply to the peer's close, if it closed.
            Ending::Peer(_) => {
                out.seal(false);
                let _ = self.ws.flush(&mut wire);
                out.drained().await;
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let frame = match wire::ws_client_frame(text) {
            Ok(frame) => frame,
            Err(message) => return self.bad_frame("bad_request", message),
        };
        match frame {
            WsClientFrame::Ping => self.outbox.send(wire::ws_pong()),
            WsClientFrame::Auth { .. } if self.claims.is_some() => {
                self.bad_frame("bad_request", "already authenticated");
            }
            WsClientFrame::Auth {
                token,
                since,
                epoch,
                filter,
            } => {
                let start = match subscribe::parse_start(since, epoch, filter) {
                    Ok(start) => start,
                    Err(e) => return self.bad_frame(e.code(), e),
                };
                match self.ctx.jwt.verify(&token) {
                    Ok(claims) => self.authenticated(claims, start),
                    Err(e) => self.refuse(e),
                }
            }
            WsClientFrame::Subscribe {
                account_id,
                since,
                epoch,
                filter,
            } => self.subscribe(account_id, since, epoch, filter),
        }
    }

    pub(super) fn start(&mut self, credential: Credential, start: Start) {
        match credential {
            Credential::Absent => {}
            Credential::Verified(claims) => self.authenticated(claims, start),
            Credential::Refused(e) => self.refuse(e),
        }
    }

    fn authenticated(&mut self, claims: Claims, (resume, filter): Start) {
        tracing::info!(transport = "websocket", connection = self.id, account = %claims.account_id,
            user = %claims.sub, since = resume.since, epoch = resume.epoch, "connection authenticated");
        self.subs
            .join_own(&self.ctx.hub, &claims, resume, filter, self.outbox.clone());
        self.claims = Some(claims);
    }

    fn refuse(&mut self, e: AuthError) {
        self.outbox.error(Disconnect::UNAUTHORIZED.word, &e);
        self.outbox.end(Ending::Server(Disconnect::UNAUTHORIZED));
    }

    /// An admin watches another account; a non-admin gets `forbidden` and
    /// nothing else. A frame that could never succeed (no auth yet, a bad
    /// account id or `since`) counts as a bad frame.
    fn subscribe(&mut self, account: String, since: Raw<'_>, epoch: Raw<'_>, filter: Raw<'_>) {
        let parsed = match self.claims {
            None => Err(SubscribeError::NotAuthenticated),
            Some(_) => SubscribeRequest::parse(account, since, epoch)
                .and_then(|req| req.with_filter(filter)),
        };
        let added = parsed.and_then(|req| {
            let requested = req.account_id.clone();
            let max = self.ctx.limits.max_subscriptions;
            let claims = self.claims.as_ref();
            self.subs
                .add(&self.ctx.hub, claims, req, max, self.outbox.clone())
                .inspect_err(|e| {
                    if let (SubscribeError::Forbidden(_), Some(claims)) = (e, claims) {
                        tracing::info!(transport = "websocket", connection = self.id,
                            account = %claims.account_id, requested = %requested,
                            "subscription refused: forbidden");
                    }
                })
        });
        match added {
            Ok(()) => {}
            Err(
                e @ (SubscribeError::NotAuthenticated
                | SubscribeError::BadAccount(_)
                | SubscribeError::BadSince),
            ) => self.bad_frame(e.code(), e),
            Err(e) => self.outbox.error(e.code(), e),
        }
    }

    fn bad_frame(&mut self, code: &str, message: impl Display) {
        self.bad_frames += 1;
        self.outbox.error(code, message);
        if self.bad_frames > MAX_BAD_FRAMES {
            self.outbox.end(Ending::Server(Disconnect::BAD_REQUEST));
        }
    }
}

/// Waits until the socket has bytes to read, through its one read-waker
/// slot rather than a waiter list (`TcpStream::readable`): the first wait
/// replaces the waker the HTTP connection task left there, which would
/// otherwise keep that finished task's memory (2.3 KB) for the life of the
/// connection.
async fn readable(tcp: &TcpStream) -> io::Result<()> {
    std::future::poll_fn(|cx| tcp.poll_read_ready(cx)).await
}

/// What a failed read means for the close the peer gets.
enum ReadFailure {
    /// A frame over the size limit: close 1009.
    TooLarge,
    /// A frame breaking RFC 6455: close 1002, or 1007 for text that is not
    /// UTF-8. The peer is still there to be told.
    Protocol(Disconnect),
    /// The connection itself broke: nobody left to tell.
    Transport,
}

fn read_failure(e: &WsError) -> ReadFailure {
    match e {
        WsError::Capacity(_) => ReadFailure::TooLarge,
        WsError::Utf8(_) => ReadFailure::Protocol(Disconnect::INVALID_PAYLOAD),
        WsError::Protocol(p) if !peer_is_gone(p) => {
            ReadFailure::Protocol(Disconnect::PROTOCOL_ERROR)
        }
        _ => ReadFailure::Transport,
    }
}

/// Protocol errors that mean the peer went away rather than misbehaved.
fn peer_is_gone(e: &ProtocolError) -> bool {
    matches!(
        e,
        ProtocolError::ResetWithoutClosingHandshake
            | ProtocolError::SendAfterClosing
            | ProtocolError::ReceivedAfterClosing
    )
}
