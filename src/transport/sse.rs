//! Server-Sent Events at `GET /v1/accounts/{account}/stream`, for clients
//! that only need to listen (`EventSource`, `curl -N`).
//!
//! Every event is `id: {seq}`, `event: {name}`, `data: {envelope JSON}`, so a
//! browser's automatic reconnect sends `Last-Event-ID: {seq}` and the hub's
//! exact resume replays what it missed, once each, in order. The snapshot is
//! `event: snapshot` with `id: {snapshot.seq}`: the snapshot reflects every
//! event up to that seq, so resuming after it must start right there — the
//! same rule as for an event, which keeps the client's bookkeeping to "last
//! id seen". When the server ends a stream (slow consumer, shutdown, store
//! failure) it first sends `event: statushub:disconnect` without an `id`
//! (so it never moves the resume point) and `data: {"reason", "reconnect"}`.
//!
//! Who may open a stream is the HTTP read rule (an API key, or a token of
//! the account or an admin); the account id and resume point are checked by
//! the one subscribe path, [`crate::subscribe`].
//!
//! Each stream has its own bounded queue, filled by the hub with non-blocking
//! sends: a client that stops reading fills it and is cut off as slow.

use super::{Context, PeerIp, next_connection_id, refusal_error, wire};
use crate::{
    admission::Permit,
    api::{self, ApiError},
    auth,
    disconnect::{DisconnectReason, Notice},
    hub::{Interest, Outbound, Resume, Sink, SinkError, Subscription, Transport, Who},
    subscribe::{self, SubscribeError, SubscribeRequest},
};
use axum::{
    Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures::{Stream, stream};
use serde::Deserialize;
use std::{convert::Infallible, pin::Pin, sync::Arc, time::Instant};
use tokio::sync::{
    mpsc::{self, error::TrySendError},
    watch,
};

pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/v1/accounts/{account}/stream", get(stream_events))
        .with_state(ctx)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    token: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) epoch: Option<String>,
    /// URL-encoded JSON ([`crate::filter`]).
    pub(crate) filter: Option<String>,
}

async fn stream_events(
    State(ctx): State<Context>,
    PeerIp(ip): PeerIp,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(account) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let SubscribeRequest {
        account_id: account,
        ..
    } = SubscribeRequest::parse(account, None, None).map_err(bad_request)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    api::authorize_reader(
        &ctx.jwt,
        &ctx.keys,
        &headers,
        query.token.as_deref(),
        &account,
    )?;
    let since = resume_point(&headers, query.since)?;
    let epoch = query.epoch.as_deref().map(subscribe::parse_epoch_text);
    let epoch = epoch.transpose().map_err(bad_request)?;
    let filter = query.filter.as_deref().map(subscribe::parse_filter_text);
    let filter = filter.transpose().map_err(bad_request)?;
    let permit = ctx
        .admission
        .admit(ip, Transport::Sse)
        .map_err(refusal_error)?;
    let id = next_connection_id();
    tracing::info!(transport = "sse", connection = id, ip = %permit.ip(), account = %account,
        since, epoch, "connection opened");

    let (queue, events) = mpsc::channel(ctx.limits.queue_size);
    let (ending, ending_rx) = watch::channel(None);
    let sink: Arc<dyn Sink> = Arc::new(SseSink { queue, ending });
    let who = Who {
        connection_id: format!("sse-{id}"),
        user: reader(&ctx, &headers, query.token.as_deref()),
        connected_since: permit.opened_at().to_owned(),
    };
    let interest = Interest {
        filter,
        who: Some(who),
    };
    let resume = Resume { since, epoch };
    let subscription = ctx.hub.subscribe_with(&account, resume, interest, sink);
    let open = Open {
        ctx: ctx.clone(),
        id,
        permit,
        subscription,
        opened: Instant::now(),
    };
    let body = Sse::new(event_stream(open, events, ending_rx)).keep_alive(
        KeepAlive::new()
            .interval(ctx.limits.ping_interval)
            .text("keep-alive"),
    );
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers proxied responses unless told not to.
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// The user a stream's token names; `None` for an API key.
fn reader(ctx: &Context, headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    let header = headers.get(header::AUTHORIZATION);
    let token = header.and_then(|h| h.to_str().ok()).and_then(auth::bearer);
    let claims = ctx.jwt.verify(token.or(query_token)?).ok()?;
    Some(claims.sub)
}

fn bad_request(e: SubscribeError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// `Last-Event-ID` (what a reconnecting `EventSource` sends) wins over `?since=`
/// (what a first connection may carry in its URL).
pub(crate) fn resume_point(
    headers: &HeaderMap,
    since: Option<String>,
) -> Result<Option<u64>, ApiError> {
    let since = || {
        since
            .as_deref()
            .map(subscribe::parse_since_text)
            .transpose()
            .map_err(bad_request)
    };
    let Some(last) = headers.get("last-event-id") else {
        return since();
    };
    // Bytes outside visible ASCII are no sequence number either (not "absent").
    let last = last.to_str().map(str::trim).unwrap_or("\u{fffd}");
    if last.is_empty() {
        return since();
    }
    subscribe::parse_since_text(last).map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "Last-Event-ID must be a sequence number, got {last:?}"
        ))
    })
}

struct SseSink {
    queue: mpsc::Sender<Event>,
    ending: watch::Sender<Option<DisconnectReason>>,
}

impl Sink for SseSink {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        let event = match msg {
            Outbound::Event(published) => wire::sse_event(published),
            Outbound::Snapshot(snapshot) => {
                wire::sse_snapshot(snapshot).map_err(|_| SinkError::Closed)?
            }
        };
        self.queue.try_send(event).map_err(|e| match e {
            TrySendError::Full(_) => SinkError::Full,
            TrySendError::Closed(_) => SinkError::Closed,
        })
    }

    fn close(&self, reason: DisconnectReason) {
        self.ending.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        });
    }

    fn transport(&self) -> Transport {
        Transport::Sse
    }
}

/// An open stream's resources; dropping it (the client went away or the
/// stream ended) releases them and logs the close.
struct Open {
    ctx: Context,
    id: u64,
    permit: Permit,
    subscription: Arc<Subscription>,
    opened: Instant,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.ctx.hub.unsubscribe(&self.subscription);
        tracing::info!(transport = "sse", connection = self.id,
            account = %self.subscription.account_id, reason = self.permit.close_reason(),
            duration_ms = self.opened.elapsed().as_millis() as u64, "connection closed");
    }
}

enum Phase {
    Live,
    /// Shutting down: send what is queued, then end.
    Draining,
    Done,
}

struct StreamState {
    open: Open,
    events: mpsc::Receiver<Event>,
    ending: watch::Receiver<Option<DisconnectReason>>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    phase: Phase,
}

fn event_stream(
    open: Open,
    events: mpsc::Receiver<Event>,
    ending: watch::Receiver<Option<DisconnectReason>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = StreamState {
        shutdown: Box::pin(open.ctx.shutdown.clone().cancelled_owned()),
        open,
        events,
        ending,
        phase: Phase::Live,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            match st.phase {
                Phase::Done => return None,
                Phase::Draining => {
                    let next = match st.events.try_recv() {
                        Ok(event) => event,
                        Err(_) => {
                            st.phase = Phase::Done;
                            goodbye(DisconnectReason::Shutdown)
                        }
                    };
                    return Some((Ok(next), st));
                }
                Phase::Live => match next_live(&mut st).await {
                    Live::Event(event) => return Some((Ok(event), st)),
                    Live::Ended(reason) => {
                        st.open.permit.set_close_reason(reason.code());
                        if reason == DisconnectReason::Shutdown {
                            // Nothing new joins the queue; what is in it still goes out.
                            st.open.ctx.hub.unsubscribe(&st.open.subscription);
                            st.phase = Phase::Draining;
                        } else {
                            // A slow client's queue is dropped: it resumes from its Last-Event-ID.
                            st.phase = Phase::Done;
                            return Some((Ok(goodbye(reason)), st));
                        }
                    }
                    Live::Closed => st.phase = Phase::Done,
                },
            }
        }
    })
}

enum Live {
    Event(Event),
    /// The hub or shutdown ended the stream.
    Ended(DisconnectReason),
    Closed,
}

async fn next_live(st: &mut StreamState) -> Live {
    tokio::select! {
        biased;
        reason = st.ending.wait_for(Option::is_some) => {
            Live::Ended(reason.ok().and_then(|r| *r).unwrap_or(DisconnectReason::Gone))
        }
        () = &mut st.shutdown => Live::Ended(DisconnectReason::Shutdown),
        event = st.events.recv() => event.map_or(Live::Closed, Live::Event),
    }
}

/// The last event of a stream the server ends (see [`wire::sse_goodbye`]).
/// Every reason the hub ends a stream for is one to resume from.
fn goodbye(reason: DisconnectReason) -> Event {
    wire::sse_goodbye(Notice {
        reason: reason.code(),
        reconnect: true,
    })
}
