//! The fan-out: committed events from the store's feed to the subscriptions
//! of their account's room on this node, without ever waiting on a
//! connection.

use super::{Hub, Offer, Published};
use crate::event::Event;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// Events the dispatcher takes from the feed at once (see [`dispatch`]).
const DISPATCH_BATCH: usize = 128;

/// Fans each committed event out to its account's subscriptions. Holds the
/// hub weakly (see the module docs) and ends when the store closes the feed
/// (or, through the hub's task token, at [`Hub::stop`]).
///
/// Events are taken from the feed in batches, and each connection that got
/// any is flushed once after the batch ([`super::Sink::flush`]): in a burst, one
/// write carries all of a connection's events of the batch.
pub(super) async fn dispatch(hub: Weak<Hub>, mut feed: mpsc::Receiver<Arc<Event>>) {
    let mut batch = Vec::with_capacity(DISPATCH_BATCH);
    let mut touched = Vec::new();
    while feed.recv_many(&mut batch, DISPATCH_BATCH).await > 0 {
        let Some(hub) = hub.upgrade() else {
            // Draining the rest keeps the writer from blocking on a full feed.
            batch.clear();
            continue;
        };
        for event in batch.drain(..) {
            hub.fan_out(event, &mut touched);
        }
        for account in touched.drain(..) {
            if let Some(room) = hub.rooms.get(&account) {
                room.subs.iter().for_each(|sub| sub.sink.flush());
            }
        }
    }
}

impl Hub {
    /// Offers one event to its room's subscriptions, noting the room in
    /// `touched` for the flush that follows the batch.
    fn fan_out(self: &Arc<Self>, event: Arc<Event>, touched: &mut Vec<String>) {
        let published = Arc::new(Published::new(Arc::unwrap_or_clone(event), &self.metrics));
        let account = &published.event.account_id;
        let mut to_drop = Vec::new();
        if let Some(mut room) = self.rooms.get_mut(account) {
            room.dispatched = published.event.seq;
            room.snapshot = None;
            if !touched.contains(account) {
                touched.push(account.clone());
            }
            // One lookup per event; offering needs only shared access.
            let room = room.downgrade();
            for sub in room.subs.iter() {
                match sub.offer(&published) {
                    Offer::Taken => {}
                    Offer::CatchUpFrom(seq) => {
                        tokio::spawn(self.clone().catch_up(sub.clone(), Some(seq).into()));
                    }
                    Offer::Drop(reason) => to_drop.push((sub.clone(), reason)),
                }
            }
        }
        // Outside the map guard: closing may re-enter `unsubscribe`.
        for (sub, reason) in to_drop {
            self.disconnect(&sub, reason);
        }
    }
}
