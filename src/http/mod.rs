//! The HTTP/1.1 connection layer under the router: accepts connections on
//! the caller's listener, bounds how long each may take to send a request's
//! headers and how long it may sit idle, counts not-yet-upgraded connections
//! per IP, and drains them at shutdown in bounded time.
//!
//! `axum::serve` has none of this: a client sending its headers one byte a
//! second, or keeping an idle connection open, was held forever; and because
//! hyper only closes a connection at shutdown between requests, one that had
//! sent part of a request (or nothing hyper could parse yet) kept the drain
//! waiting its full timeout. Here each connection knows its phase:
//!
//! - **idle**: no request in flight, nothing of the next one received: closed
//!   after the idle timeout, and at once at shutdown;
//! - **head**: bytes of a request arrived but its headers are not complete:
//!   closed after the header-read timeout, and at once at shutdown;
//! - **busy**: a request is being handled or its response body (an SSE
//!   stream) is still being sent: never timed out here; at shutdown it may
//!   finish (transports end their streams on the shutdown signal) until the
//!   drain deadline, then it is cut;
//! - **long poll**: only requests the caller marks as long polls are in
//!   flight (Engine.IO's polling GET, which carries nothing the client sent):
//!   like busy, but cut as soon as the server says every client was told to
//!   leave ([`Shutdown::polls_answered`]). An Engine.IO session whose
//!   namespace socket is gone is not closed by socketioxide's `close`, and its
//!   client — which went away before its own close packet could arrive —
//!   never ends the poll: this is what kept shutdown waiting out its drain.
//!
//! A connection upgraded to WebSocket leaves this layer (and its per-IP
//! count): client connections are counted by [`Admission::admit`].

mod socket;

pub(crate) use socket::{linger, upgraded_stream};

use crate::admission::{Admission, HttpSlot};
use axum::http::{Method, Uri};
use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{ConnectInfo, Request},
    response::Response,
};
use http_body::{Frame, SizeHint};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use socket::Watched;
use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::{Service, ServiceExt};

/// How long a connection being closed (timed out, or at shutdown with no
/// request in flight) may take to flush what it has already written.
const CLOSE_GRACE: Duration = Duration::from_millis(250);
/// Pause after an accept error (out of file descriptors, say) before the next
/// accept, so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How the server stops this layer.
#[derive(Clone)]
pub struct Shutdown {
    /// The server's signal: stop accepting, close connections with nothing
    /// in flight, let requests finish.
    pub signal: CancellationToken,
    /// Cancelled once every client was told to leave: long polls are cut.
    pub polls_answered: CancellationToken,
    /// How long requests may take to finish after `signal`.
    pub drain: Duration,
}

/// Per-connection time bounds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its headers.
    pub header_read: Duration,
    /// With no request in flight and nothing of the next one received.
    pub idle: Duration,
}

/// Serves `app` on `listener` until the shutdown signal fires, then stops
/// accepting, closes every connection that has no request in flight and lets
/// the others finish for at most the drain time. `is_long_poll` marks the
/// requests that may be cut once `polls_answered` fires. Returns how many
/// connections were cut at the drain deadline.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    admission: Arc<Admission>,
    timeouts: Timeouts,
    is_long_poll: fn(&Method, &Uri) -> bool,
    shutdown: Shutdown,
) -> usize
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let Shutdown {
        signal: shutdown,
        polls_answered,
        drain,
    } = shutdown;
    let connections = TaskTracker::new();
    // Cancelled at the drain deadline: connections still busy are cut.
    let abandon = CancellationToken::new();
    loop {
        let (tcp, remote) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // Nagle's algorithm holds a small write back until the previous one
        // is acknowledged, and clients delay ACKs by up to 40 ms: every
        // handshake that answers in two writes (HTTP 101, then Engine.IO's
        // open packet), and every event behind an unacknowledged one, would
        // wait for it.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Some(slot) = admission.admit_http(remote.ip()) else {
            tracing::debug!(%remote, "too many HTTP connections from this address; closed");
            continue;
        };
        let conn = Connection {
            state: Arc::default(),
            remote,
            timeouts,
            is_long_poll,
            _slot: slot,
        };
        connections.spawn(conn.run(
            tcp,
            app.clone(),
            shutdown.clone(),
            polls_answered.clone(),
            abandon.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_ok()
    {
        return 0;
    }
    let cut = connections.len();
    abandon.cancel();
    connections.wait().await;
    cut
}

/// What a connection's I/O and its requests tell its task.
#[derive(Default)]
struct State {
    /// Requests being handled plus response bodies still being sent.
    in_flight: AtomicUsize,
    /// Of those, the long polls.
    long_polls: AtomicUsize,
    /// Bytes arrived while no request was in flight: a request head has begun.
    head_started: AtomicBool,
    changed: Notify,
    /// The last request's method and path, for the log line of a request cut
    /// at the drain deadline. Copied: hyper's `Uri` is a view of the
    /// connection's 8 KiB read buffer, and this state outlives an upgrade
    /// (Socket.IO's WebSocket reads through it), so a kept `Uri` held that
    /// buffer for the life of every Socket.IO connection. The query is left
    /// out of logs anyway (it may carry a token).
    last_request: Mutex<Option<(Method, String)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Head,
    LongPoll,
    Busy,
}

impl State {
    fn phase(&self) -> Phase {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight > self.long_polls.load(Ordering::Acquire) {
            Phase::Busy
        } else if in_flight > 0 {
            Phase::LongPoll
        } else if self.head_started.load(Ordering::Acquire) {
            Phase::Head
        } else {
            Phase::Idle
        }
    }
}

struct Connection {
    state: Arc<State>,
    remote: SocketAddr,
    timeouts: Timeouts,
    is_long_poll: fn(&Method, &Uri) -> bool,
    /// This connection's place in the per-IP count, until it ends or upgrades.
    _slot: HttpSlot,
}

impl Connection {
    async fn run<S>(
        self,
        tcp: TcpStream,
        app: S,
        shutdown: CancellationToken,
        polls_answered: CancellationToken,
        abandon: CancellationToken,
    ) where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let state = self.state.clone();
        let remote = self.remote;
        let is_long_poll = self.is_long_poll;
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let long_poll = is_long_poll(request.method(), request.uri());
            let guard = InFlight::enter(&state, long_poll);
            *state.last_request.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((request.method().clone(), request.uri().path().to_owned()));
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            let call = app.clone().oneshot(request);
            async move {
                let response = call.await?;
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, guard })))
            }
        });
        let io = TokioIo::new(Watched {
            inner: Some(tcp),
            state: self.state.clone(),
        });
        let conn = http1::Builder::new()
            // Timed here, by phase (hyper's own timer would also run while
            // the connection waits idle between requests).
            .header_read_timeout(None)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);

        let mut draining = false;
        let mut phase = self.state.phase();
        let mut since = Instant::now();
        loop {
            let changed = self.state.changed.notified();
            let now_phase = self.state.phase();
            if now_phase != phase {
                phase = now_phase;
                since = Instant::now();
            }
            // At shutdown a connection with nothing in flight goes at once.
            if draining && matches!(phase, Phase::Idle | Phase::Head) {
                break;
            }
            if phase == Phase::LongPoll && polls_answered.is_cancelled() {
                // Nothing more will be said on it, and nothing it carries
                // was sent by the client.
                return;
            }
            let deadline = match phase {
                Phase::Idle => Some(since + self.timeouts.idle),
                Phase::Head => Some(since + self.timeouts.header_read),
                Phase::LongPoll | Phase::Busy => None,
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%remote, %error, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = changed => {}
                () = sleep_until(deadline) => {
                    tracing::debug!(%remote, ?phase, "HTTP connection timed out");
                    break;
                }
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    // Between requests hyper closes; mid-request it closes
                    // once the response is sent.
                    conn.as_mut().graceful_shutdown();
                }
                () = polls_answered.cancelled(), if phase == Phase::LongPoll => return,
                () = abandon.cancelled() => {
                    let last = self.state.last_request.lock().unwrap_or_else(|p| p.into_inner()).take();
                    let (method, path) = last.map_or((None, None), |(m, p)| (Some(m), Some(p)));
                    tracing::warn!(%remote, ?method, ?path, "request still in flight at the drain deadline; connection cut");
                    return;
                }
            }
        }
        // Nothing in flight: let hyper flush what it wrote and close; a
        // request head still arriving is cut.
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One request in flight, from the moment its headers are read until its
/// response body has been sent (or the request was dropped).
struct InFlight {
    state: Arc<State>,
    long_poll: bool,
}

impl InFlight {
    fn enter(state: &Arc<State>, long_poll: bool) -> Self {
        // In this order (and the reverse on drop), so a reader never sees
        // more long polls than requests in flight.
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        if long_poll {
            state.long_polls.fetch_add(1, Ordering::AcqRel);
        }
        state.head_started.store(false, Ordering::Release);
        state.changed.notify_one();
        InFlight {
            state: state.clone(),
            long_poll,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.long_poll {
            self.state.long_polls.fetch_sub(1, Ordering::AcqRel);
        }
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.state.changed.notify_one();
    }
}

/// A response body that keeps its request in flight until it is dropped.
struct Tracked {
    body: Body,
    #[allow(dead_code)] // held for its Drop
    guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
