//! Progress without flooding: at most one `sync_progress` per job per
//! window (250 ms) carrying the latest values, while every status change is
//! its own event at once.
//!
//! A report inside the window only parks its values; a timer publishes the
//! latest parked values when the window ends. Publishes of one job are
//! ordered by its version (each stored write has a higher one), so a parked
//! progress event can never be published after a newer status change: the
//! older one is dropped instead. Windows are per node: in a cluster each
//! node receiving a job's reports keeps its own.

use crate::{
    event::{SYNC_PROGRESS, Section},
    hub::{Hub, HubError},
    store::{Body, EntryChange},
};
use dashmap::DashMap;
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;

/// The contract's bound: one progress event per job per this long.
pub const WINDOW: Duration = Duration::from_millis(250);

type Key = (String, String);

#[derive(Default)]
struct Slot {
    /// The version last published; held across a publish, so one job's
    /// publishes go out in version order.
    published: tokio::sync::Mutex<u64>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// The newest version offered.
    latest: u64,
    last_emit: Option<Instant>,
    parked: Option<(u64, Value)>,
    timer: bool,
    finished: bool,
}

/// Offers of one job's new state; decides which become events.
pub struct Coalescer {
    hub: Arc<Hub>,
    window: Duration,
    slots: DashMap<Key, Arc<Slot>>,
}

/// One offered state of a job.
pub struct Offer {
    pub account_id: String,
    pub sync_id: String,
    /// The stored version of this state.
    pub version: u64,
    /// The event's data.
    pub data: Value,
    /// A status (or attempt) change: published at once.
    pub status_change: bool,
    /// Finished: the job's slot may be pruned once published.
    pub finished: bool,
}

impl Coalescer {
    pub fn new(hub: Arc<Hub>, window: Duration) -> Arc<Coalescer> {
        Arc::new(Coalescer {
            hub,
            window,
            slots: DashMap::new(),
        })
    }

    /// Jobs with a slot (running, or with an event still parked).
    pub fn tracked(&self) -> usize {
        self.slots.len()
    }

    /// Publishes `offer` now, parks it for the end of the window, or drops
    /// it when a newer state was offered already. An error is the publish's
    /// (the state is stored; only its event is missing).
    pub async fn offer(self: &Arc<Self>, offer: Offer) -> Result<(), HubError> {
        let key = (offer.account_id.clone(), offer.sync_id.clone());
        let slot = self.slots.entry(key.clone()).or_default().clone();
        let now = Instant::now();
        let publish_now = {
            let mut state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            if offer.version <= state.latest {
                return Ok(());
            }
            state.latest = offer.version;
            state.finished = offer.finished;
            let window_over = state.last_emit.is_none_or(|at| now >= at + self.window);
            if offer.status_change || window_over {
                state.parked = None;
                state.last_emit = Some(now);
                true
            } else {
                state.parked = Some((offer.version, offer.data.clone()));
                if !state.timer {
                    state.timer = true;
                    let at = state.last_emit.map_or(now, |t| t + self.window);
                    tokio::spawn(self.clone().flush_at(at, key.clone(), slot.clone()));
                }
                false
            }
        };
        if publish_now {
            self.publish(&slot, &key, offer.version, offer.data).await?;
        }
        Ok(())
    }

    async fn flush_at(self: Arc<Self>, mut at: Instant, key: Key, slot: Arc<Slot>) {
        // An event published at once since the timer was set starts a new
        // window: wait for the end of that one instead.
        loop {
            tokio::time::sleep_until(at).await;
            let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            match state.last_emit.map(|t| t + self.window) {
                Some(end) if end > Instant::now() => at = end,
                _ => break,
            }
        }
        let parked = {
            let mut state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            state.timer = false;
            let parked = state.parked.take();
            if parked.is_some() {
                state.last_emit = Some(Instant::now());
            }
            parked
        };
        if let Some((version, data)) = parked
            && let Err(error) = self.publish(&slot, &key, version, data).await
        {
            tracing::warn!(account = %key.0, sync = %key.1, %error, "sync progress stored but its event was not published");
        }
    }

    async fn publish(
        &self,
        slot: &Slot,
        key: &Key,
        version: u64,
        data: Value,
    ) -> Result<(), HubError> {
        let mut published = slot.published.lock().await;
        if *published >= version {
            return Ok(());
        }
        let body = Body::Entry {
            section: Section::Jobs,
            key: key.1.clone(),
            derive: Arc::new(move |previous| newest(previous, &data)),
        };
        self.hub.publish(&key.0, SYNC_PROGRESS, body, None).await?;
        *published = version;
        Ok(())
    }

    /// Drops the slots of jobs that finished more than `linger` ago with
    /// nothing parked or timed. A finished slot lingers so that a report
    /// racing the final one (an older version) is still recognised as older.
    pub fn prune(&self, linger: Duration) {
        let now = Instant::now();
        self.slots.retain(|_, slot| {
            let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            let idle = state.last_emit.is_none_or(|at| now >= at + linger);
            !(state.finished && !state.timer && state.parked.is_none() && idle)
        });
    }
}

/// The event carries `data`; the snapshot entry stays the previous one
/// when that has a higher `revision` (another node published a newer state
/// of the job first), so the snapshot never goes back in a job's life.
fn newest(previous: Option<&Value>, data: &Value) -> EntryChange {
    let revision = |v: &Value| v.get("revision").and_then(Value::as_u64).unwrap_or(0);
    match previous {
        Some(previous) if revision(previous) > revision(data) => EntryChange {
            data: data.clone(),
            entry: Some(previous.clone()),
        },
        _ => EntryChange::kept(data.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{Limits, Retention},
        event::SYNC_PROGRESS,
        store::MemoryLog,
    };
    use serde_json::json;

    fn offer(version: u64, done: u64, status: &str) -> Offer {
        Offer {
            account_id: "acc".into(),
            sync_id: "s1".into(),
            version,
            data: json!({"syncId": "s1", "status": status, "progress": {"done": done}, "revision": version}),
            status_change: status != "running" || version == 1,
            finished: status == "completed",
        }
    }

    async fn published(hub: &Hub) -> Vec<serde_json::Value> {
        let history = hub.history("acc", 0, 100_000).await.expect("history");
        history
            .events
            .iter()
            .filter(|e| e.event == SYNC_PROGRESS)
            .map(|e| serde_json::from_str(e.data.get()).expect("json"))
            .collect()
    }

    /// 10,000 reports over one second of (paused, controlled) time: at most
    /// one event per 250 ms window besides the start and the end, and the
    /// last event carries the last values exactly.
    #[tokio::test(start_paused = true)]
    async fn ten_thousand_reports_make_a_bounded_number_of_events() {
        let (feed, rx) = tokio::sync::mpsc::channel(100_000);
        let log = Arc::new(MemoryLog::new(Retention::default(), feed));
        let hub = Hub::start(log, rx, Limits::default());
        let coalescer = Coalescer::new(hub.clone(), WINDOW);
        coalescer
            .offer(offer(1, 0, "running"))
            .await
            .expect("start");
        for done in 1..=10_000u64 {
            coalescer
                .offer(offer(done + 1, done, "running"))
                .await
                .expect("report");
            if done % 10 == 0 {
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        // The window's parked values go out when it ends, unprompted.
        tokio::time::advance(WINDOW).await;
        tokio::task::yield_now().await;
        let events = published(&hub).await;
        let progress = events.len() - 1;
        assert!(
            (4..=5).contains(&progress),
            "{progress} progress events in 1 s"
        );
        assert_eq!(
            events.last().unwrap()["progress"]["done"],
            10_000,
            "the latest values"
        );
        coalescer
            .offer(offer(10_002, 10_000, "completed"))
            .await
            .expect("end");
        let events = published(&hub).await;
        assert_eq!(
            events.last().unwrap()["status"],
            "completed",
            "a status change is its own event"
        );
        assert_eq!(
            newest(Some(&json!({"revision": 7})), &json!({"revision": 6})).entry,
            Some(json!({"revision": 7})),
            "an older revision never replaces the snapshot entry"
        );
        // An older state arriving late is dropped, not published after the end.
        coalescer
            .offer(offer(10_001, 9_999, "running"))
            .await
            .expect("late");
        tokio::time::advance(WINDOW * 2).await;
        assert_eq!(published(&hub).await.len(), events.len());
    }
}
