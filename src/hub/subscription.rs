//! One connection's interest in one account, and the rule that makes resume
//! exact: every event reaches the connection once, in seq order.
//!
//! A subscription starts *catching up*: live events are parked in `pending`
//! while the hub replays the gap (or a snapshot) from the store, then the
//! parked ones are drained, skipping any seq already sent. From then on it is
//! *live*: the next seq is sent straight to the sink; an older one is a
//! duplicate and dropped; a newer one means a gap (events lost between nodes)
//! and sends it back to catching up.
//!
//! A filtered subscription ([`crate::filter`]) runs the same rule over every
//! seq of the account: an event the filter refuses is counted as seen
//! (`last_seq` moves) but not sent, so its seq is no gap and a resume skips
//! it too. An unfiltered subscription pays one `None` check per event.

use super::{DisconnectReason, Published, Transport};
use crate::{
    filter::Filter,
    store::{PresenceEntry, Snapshot},
};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

/// Where a subscriber resumes: the last seq it saw (`None` asks for a
/// snapshot) and, when it knows it, the epoch that seq belongs to. A
/// different epoch than the store's means those seqs name other events, so
/// the hub answers with a reset snapshot instead of events (see `Hub::replay`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub since: Option<u64>,
    pub epoch: Option<String>,
}

/// A bare `since`, trusted as is (no epoch to check it against).
impl From<Option<u64>> for Resume {
    fn from(since: Option<u64>) -> Self {
        Resume { since, epoch: None }
    }
}

/// Who holds a subscription, for presence: the connection, its user (the
/// token's `sub`; `None` for an API key) and when it connected (RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub connection_id: String,
    pub user: Option<String>,
    pub connected_since: String,
}

/// What a connection asks of a subscription besides account and resume point.
#[derive(Clone, Debug, Default)]
pub struct Interest {
    /// Only events (and snapshot entries) that pass; `None` takes all.
    pub filter: Option<Arc<Filter>>,
    /// Listed in presence when known.
    pub who: Option<Who>,
}

/// What a transport connection accepts from the hub.
#[derive(Clone, Copy)]
pub enum Outbound<'a> {
    Event(&'a Arc<Published>),
    Snapshot(&'a Snapshot),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The connection's bounded queue is full: it is not keeping up.
    Full,
    /// The connection is gone.
    Closed,
}

/// A transport connection's outgoing side. Implementations never block.
pub trait Sink: Send + Sync + 'static {
    fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError>;
    /// Writes out what `try_send` accepted, for a sink that holds messages
    /// back to write several at once (`/ws`). The hub calls it after each
    /// batch it dispatched and before it waits on a full sink.
    fn flush(&self) {}
    /// Ends the connection, telling the peer why where the transport can.
    fn close(&self, reason: DisconnectReason);
    /// Which transport this is, for metrics and logs.
    fn transport(&self) -> Transport {
        Transport::Other
    }
}

/// What happened to a live event offered to a subscription.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Sent, parked, or skipped as a duplicate: nothing to do.
    Taken,
    /// A gap was seen; the hub must start a catch-up from this seq.
    CatchUpFrom(u64),
    /// The connection could not keep up or is gone; the hub drops it.
    Drop(DisconnectReason),
}

/// The end of a catch-up round.
#[derive(Debug, PartialEq, Eq)]
pub enum Caught {
    Live,
    /// Parked events skip ahead of what the store had: read again from here.
    Again(u64),
    Closed,
}

struct State {
    live: bool,
    closed: bool,
    /// Highest seq the sink has accepted (or the snapshot reflects).
    last_seq: u64,
    pending: VecDeque<Arc<Published>>,
}

pub struct Subscription {
    pub id: u64,
    pub account_id: String,
    pub sink: Arc<dyn Sink>,
    pub filter: Option<Arc<Filter>>,
    pub who: Option<Who>,
    pending_limit: usize,
    state: Mutex<State>,
}

impl Subscription {
    pub(super) fn new(
        id: u64,
        account_id: String,
        sink: Arc<dyn Sink>,
        interest: Interest,
        pending_limit: usize,
    ) -> Self {
        Subscription {
            id,
            account_id,
            sink,
            filter: interest.filter,
            who: interest.who,
            pending_limit,
            state: Mutex::new(State {
                live: false,
                closed: false,
                last_seq: 0,
                pending: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a single assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// The highest seq of the account this subscription is up to date with
    /// (sent, or skipped by its filter).
    pub fn last_seq(&self) -> u64 {
        self.state().last_seq
    }

    /// This subscription as presence lists it on `node`; `None` when its
    /// connection did not say who holds it.
    pub fn presence(&self, node: &str) -> Option<PresenceEntry> {
        let who = self.who.as_ref()?;
        Some(PresenceEntry {
            connection_id: who.connection_id.clone(),
            account_id: self.account_id.clone(),
            user: who.user.clone(),
            transport: self.sink.transport().as_str().to_owned(),
            node: node.to_owned(),
            connected_since: who.connected_since.clone(),
            last_seq: self.last_seq(),
            filtered: self.filter.is_some(),
        })
    }

    /// Whether the filter lets `event` through (always, unfiltered).
    pub fn wants(&self, event: &Published) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.passes(event.facts()))
    }

    /// Hands a message to the sink, counting delivered events.
    pub(super) fn deliver(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
        self.sink.try_send(msg)?;
        if let Outbound::Event(published) = msg {
            published.counters.delivered();
        }
        Ok(())
    }

    /// Offers a live event; never waits.
    pub fn offer(&self, event: &Arc<Published>) -> Offer {
        let mut state = self.state();
        if state.closed {
            return Offer::Taken;
        }
        if !state.live {
            if state.pending.len() >= self.pending_limit {
                return Offer::Drop(DisconnectReason::Slow);
            }
            state.pending.push_back(event.clone());
            return Offer::Taken;
        }
        let seq = event.event.seq;
        if seq <= state.last_seq {
            return Offer::Taken;
        }
        if seq > state.last_seq + 1 {
            state.live = false;
            state.pending.push_back(event.clone());
            return Offer::CatchUpFrom(state.last_seq);
        }
        if !self.wants(event) {
            state.last_seq = seq;
            return Offer::Taken;
        }
        match self.deliver(Outbound::Event(event)) {
            Ok(()) => {
                state.last_seq = seq;
                Offer::Taken
            }
            Err(SinkError::Full) => Offer::Drop(DisconnectReason::Slow),
            Err(SinkError::Closed) => Offer::Drop(DisconnectReason::Gone),
        }
    }

    /// Records what the catch-up delivered from the store.
    pub(super) fn advance(&self, seq: u64) {
        let mut state = self.state();
        state.last_seq = state.last_seq.max(seq);
    }

    /// Sends the parked events that follow what the catch-up delivered; goes
    /// live when they run out without a gap.
    pub(super) fn finish_catch_up(&self) -> Result<Caught, DisconnectReason> {
        let mut state = self.state();
        if state.closed {
            return Ok(Caught::Closed);
        }
        while let Some(event) = state.pending.front().cloned() {
            let seq = event.event.seq;
            if seq <= state.last_seq {
                state.pending.pop_front();
                continue;
            }
            if seq > state.last_seq + 1 {
                return Ok(Caught::Again(state.last_seq));
            }
            if !self.wants(&event) {
                state.pending.pop_front();
                state.last_seq = seq;
                continue;
            }
            match self.deliver(Outbound::Event(&event)) {
                Ok(()) => {
                    state.pending.pop_front();
                    state.last_seq = seq;
                }
                Err(SinkError::Full) => return Err(DisconnectReason::Slow),
                Err(SinkError::Closed) => return Err(DisconnectReason::Gone),
            }
        }
        state.live = true;
        Ok(Caught::Live)
    }

    /// Marks the subscription closed; returns false when it already was.
    pub(super) fn mark_closed(&self) -> bool {
        let mut state = self.state();
        let was_open = !state.closed;
        state.closed = true;
        state.pending.clear();
        was_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::Event, metrics::Metrics};
    use serde_json::json;

    #[derive(Default)]
    struct Seen(Mutex<Vec<u64>>);

    impl Sink for Seen {
        fn try_send(&self, msg: Outbound<'_>) -> Result<(), SinkError> {
            if let Outbound::Event(p) = msg {
                self.0.lock().unwrap().push(p.event.seq);
            }
            Ok(())
        }
        fn close(&self, _: DisconnectReason) {}
    }

    fn published(seq: u64, name: &str) -> Arc<Published> {
        let event = Event {
            event: name.into(),
            account_id: "a".into(),
            seq,
            id: format!("e{seq}"),
            published_at: "T".into(),
            data: serde_json::value::to_raw_value(&json!({})).unwrap(),
        };
        Arc::new(Published::new(event, &Metrics::default()))
    }

    #[test]
    fn a_filtered_seq_is_seen_not_sent_and_is_no_gap() {
        let sink = Arc::new(Seen::default());
        let filter = Filter::parse(&json!([{ "events": ["keep"] }])).unwrap();
        let interest = Interest {
            filter: Some(Arc::new(filter)),
            who: None,
        };
        let sub = Subscription::new(1, "a".into(), sink.clone(), interest, 8);
        // Parked during the catch-up: 1 is skipped there too.
        assert_eq!(sub.offer(&published(1, "drop")), Offer::Taken);
        assert_eq!(sub.finish_catch_up(), Ok(Caught::Live));
        for (seq, name) in [(2, "keep"), (3, "drop"), (4, "drop"), (5, "keep")] {
            assert_eq!(sub.offer(&published(seq, name)), Offer::Taken, "seq {seq}");
        }
        assert_eq!(*sink.0.lock().unwrap(), [2, 5]);
        assert_eq!(sub.last_seq(), 5);
        // A real gap still sends it back to catching up.
        assert_eq!(sub.offer(&published(7, "keep")), Offer::CatchUpFrom(5));
    }
}
